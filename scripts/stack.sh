#!/usr/bin/env bash
# The local stack: Apache Kafka (KRaft, single node, jars from Maven Central), Redis and Prometheus
# as plain processes on 127.0.0.1, each with its data and log under $NSM_STACK_DIR.
#
#   scripts/stack.sh install   fetch what is missing (Debian packages, Kafka jars); no-op when present
#   scripts/stack.sh up        install, then start what is not running and wait until each answers
#   scripts/stack.sh down      stop everything this stack started
#   scripts/stack.sh status    one line per service
#
# Idempotent: `up` twice leaves one of each; a service that fails to start is named, with the end of
# its log, and the script exits non-zero.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${NSM_STACK_DIR:-$ROOT/.stack}"
CACHE_DIR="${NSM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nsm}"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")"
KAFKA_LIBS="$CACHE_DIR/kafka-$KAFKA_VERSION/libs"

KAFKA_PORT="${NSM_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${NSM_KAFKA_CONTROLLER_PORT:-9093}"
REDIS_PORT="${NSM_REDIS_PORT:-6379}"
PROMETHEUS_PORT="${NSM_PROMETHEUS_PORT:-9090}"
METRICS_PORT="${NSM_METRICS_PORT:-6066}"
SCRAPE_INTERVAL="${NSM_SCRAPE_INTERVAL:-2s}"
KAFKA_START_TIMEOUT="${NSM_KAFKA_START_TIMEOUT:-120}"

say() { printf '%s\n' "$*"; }
fail() { printf 'stack: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

show_log_tail() {
  printf -- '--- last lines of %s ---\n' "$1" >&2
  tail -n 30 "$1" >&2 2>/dev/null || true
}

# ---- install -------------------------------------------------------------------------------

install_debian_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  # The evaluate report is checked by rendering it headless (tests/unit/analysis).
  command -v chromium >/dev/null || missing+=(chromium)
  ((${#missing[@]})) || return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_kafka_jars() {
  if compgen -G "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; then return 0; fi
  say "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS.partial"
  mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.partial"
  rm -rf "$KAFKA_LIBS" && mv "$KAFKA_LIBS.partial" "$KAFKA_LIBS"
}

cmd_install() {
  install_debian_packages
  install_kafka_jars
}

# ---- kafka ---------------------------------------------------------------------------------

kafka_java() {
  java -Xms512m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

start_kafka() {
  local dir="$STACK_DIR/kafka" pidfile="$STACK_DIR/kafka/kafka.pid" log="$STACK_DIR/kafka/kafka.log"
  if pid_alive "$pidfile" && port_open "$KAFKA_PORT"; then say "kafka      already running on 127.0.0.1:$KAFKA_PORT"; return 0; fi
  port_open "$KAFKA_PORT" && fail "port $KAFKA_PORT is taken by another process: stop it or set NSM_KAFKA_PORT"
  mkdir -p "$dir/data"
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
    -e "s|@DATA_DIR@|$dir/data|g" "$ROOT/scripts/kafka/server.properties.in" >"$dir/server.properties"
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    local cluster_id
    cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
      --ignore-formatted >"$dir/format.log" 2>&1 || { show_log_tail "$dir/format.log"; fail "kafka storage format failed"; }
  fi
  : >"$log"
  nohup bash -c "exec java -Xms512m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile='$ROOT/scripts/kafka/log4j2.properties' \
    -cp '$KAFKA_LIBS/*' kafka.Kafka '$dir/server.properties'" >"$log" 2>&1 &
  echo $! >"$pidfile"
  local waited=0
  until grep -q "Kafka Server started" "$log" 2>/dev/null && port_open "$KAFKA_PORT"; do
    if ! pid_alive "$pidfile"; then show_log_tail "$log"; fail "kafka exited during start-up"; fi
    if ((waited >= KAFKA_START_TIMEOUT)); then show_log_tail "$log"; fail "kafka did not start within ${KAFKA_START_TIMEOUT}s"; fi
    sleep 1; waited=$((waited + 1))
  done
  say "kafka      started on 127.0.0.1:$KAFKA_PORT (Apache Kafka $KAFKA_VERSION, KRaft, ${waited}s; log $log)"
}

# ---- redis ---------------------------------------------------------------------------------

start_redis() {
  local dir="$STACK_DIR/redis" pidfile="$STACK_DIR/redis/redis.pid"
  if pid_alive "$pidfile" && port_open "$REDIS_PORT"; then say "redis      already running on 127.0.0.1:$REDIS_PORT"; return 0; fi
  port_open "$REDIS_PORT" && fail "port $REDIS_PORT is taken by another process: stop it or set NSM_REDIS_PORT"
  mkdir -p "$dir"
  # Persistence on (AOF, fsync every second) so that a restart of Redis keeps the metric state,
  # as it would in production.
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" \
    --pidfile "$pidfile" --logfile "$dir/redis.log" --save "" --appendonly yes \
    --appendfsync everysec >/dev/null || { show_log_tail "$dir/redis.log"; fail "redis failed to start"; }
  local waited=0
  until [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]; do
    if ((waited >= 30)); then show_log_tail "$dir/redis.log"; fail "redis did not answer within 15s"; fi
    sleep 0.5; waited=$((waited + 1))
  done
  say "redis      started on 127.0.0.1:$REDIS_PORT ($(redis-server --version | awk '{print $3}'); log $dir/redis.log)"
}

# ---- prometheus ----------------------------------------------------------------------------

start_prometheus() {
  local dir="$STACK_DIR/prometheus" pidfile="$STACK_DIR/prometheus/prometheus.pid" log="$STACK_DIR/prometheus/prometheus.log"
  if pid_alive "$pidfile" && port_open "$PROMETHEUS_PORT"; then say "prometheus already running on 127.0.0.1:$PROMETHEUS_PORT"; return 0; fi
  port_open "$PROMETHEUS_PORT" && fail "port $PROMETHEUS_PORT is taken by another process: stop it or set NSM_PROMETHEUS_PORT"
  mkdir -p "$dir/data" "$dir/targets"
  sed -e "s|@SCRAPE_INTERVAL@|$SCRAPE_INTERVAL|g" -e "s|@PROMETHEUS_PORT@|$PROMETHEUS_PORT|g" \
    -e "s|@TARGETS_DIR@|$dir/targets|g" -e "s|@RULES_DIR@|$ROOT/prometheus/rules|g" \
    "$ROOT/prometheus/prometheus.local.yml.in" >"$dir/prometheus.yml"
  printf '[{"targets": ["127.0.0.1:%s"], "labels": {"service": "nsm-worker"}}]\n' "$METRICS_PORT" >"$dir/targets/worker.json"
  nohup prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --web.enable-lifecycle --web.enable-admin-api \
    --storage.tsdb.retention.time=400d >"$log" 2>&1 &
  echo $! >"$pidfile"
  local waited=0
  until curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" >/dev/null 2>&1; do
    if ! pid_alive "$pidfile"; then show_log_tail "$log"; fail "prometheus exited during start-up"; fi
    if ((waited >= 60)); then show_log_tail "$log"; fail "prometheus was not ready within 30s"; fi
    sleep 0.5; waited=$((waited + 1))
  done
  say "prometheus started on http://127.0.0.1:$PROMETHEUS_PORT ($(prometheus --version 2>&1 | head -n 1 | awk '{print $3}'); log $log)"
}

# ---- down / status -------------------------------------------------------------------------

stop_pidfile() {
  local name="$1" pidfile="$2"
  if ! pid_alive "$pidfile"; then rm -f "$pidfile"; say "$(printf '%-10s' "$name") not running"; return 0; fi
  local pid; pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
  rm -f "$pidfile"
  say "$(printf '%-10s' "$name") stopped"
}

cmd_down() {
  stop_pidfile prometheus "$STACK_DIR/prometheus/prometheus.pid"
  stop_pidfile kafka "$STACK_DIR/kafka/kafka.pid"
  stop_pidfile redis "$STACK_DIR/redis/redis.pid"
}

status_line() {
  local name="$1" pidfile="$2" port="$3"
  if pid_alive "$pidfile" && port_open "$port"; then
    printf '%-10s up    pid %-7s 127.0.0.1:%s\n' "$name" "$(cat "$pidfile")" "$port"
  else
    printf '%-10s down\n' "$name"; return 1
  fi
}

cmd_status() {
  local rc=0
  status_line kafka "$STACK_DIR/kafka/kafka.pid" "$KAFKA_PORT" || rc=1
  status_line redis "$STACK_DIR/redis/redis.pid" "$REDIS_PORT" || rc=1
  status_line prometheus "$STACK_DIR/prometheus/prometheus.pid" "$PROMETHEUS_PORT" || rc=1
  return $rc
}

cmd_up() {
  cmd_install
  mkdir -p "$STACK_DIR"
  start_redis
  start_prometheus
  start_kafka
}

case "${1:-}" in
  install) cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
