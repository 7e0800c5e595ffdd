"""Analysis on top of the exact engine: why a metric moved (`explain`) and whether a north star is
the right one (`evaluate`).

Both read metric values through a `ValueSource` (values of metrics as of given times), so the
analysis does not care where the values come from; `EventsSource` computes them from a file of
events with the engine `nsm compute` uses. The account-level tests of `evaluate` also need the
events themselves, which an `EventLog` holds.
"""
