#!/usr/bin/env bash
# The local stack: Apache Kafka (KRaft, single node, jars from Maven Central), Redis and Prometheus
# as plain processes on 127.0.0.1, each with its data and log under $NSM_STACK_DIR.
#
#   scripts/stack.sh install   fetch what is missing (Debian packages, Kafka jars); no-op when present
#   scripts/stack.sh up        install, then start what is not running and wait until each answers
#   scripts/stack.sh down      stop everything this stack started
#   scripts/stack.sh status    one line per service
#   scripts/stack.sh up-cluster [redis|kafka]    a Redis Cluster (3 masters, 3 replicas) and a
#                              three-broker KRaft Kafka, beside the single-node stack
#   scripts/stack.sh down-cluster | status-cluster
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
# The clusters (up-cluster): Redis on six ports from NSM_CLUSTER_REDIS_PORT (each node's cluster
# bus on its port + 10000), Kafka brokers on three from NSM_CLUSTER_KAFKA_PORT and their
# controllers on three from NSM_CLUSTER_KAFKA_CONTROLLER_PORT.
CLUSTER_DIR="$STACK_DIR/cluster"
CLUSTER_REDIS_PORT="${NSM_CLUSTER_REDIS_PORT:-7001}"
CLUSTER_KAFKA_PORT="${NSM_CLUSTER_KAFKA_PORT:-29092}"
CLUSTER_KAFKA_CONTROLLER_PORT="${NSM_CLUSTER_KAFKA_CONTROLLER_PORT:-29192}"
# Optional: a password (requirepass and masterauth) and TLS (tls-port, tls-cluster,
# tls-replication, with a CA and certificate made here) for the Redis Cluster.
CLUSTER_REDIS_PASSWORD="${NSM_CLUSTER_REDIS_PASSWORD:-}"
CLUSTER_REDIS_TLS="${NSM_CLUSTER_REDIS_TLS:-0}"
# How long a master may be unreachable before its replica takes over.
CLUSTER_NODE_TIMEOUT_MS="${NSM_CLUSTER_NODE_TIMEOUT_MS:-2000}"

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
  # The Redis Cluster's TLS certificates (up-cluster with NSM_CLUSTER_REDIS_TLS=1).
  command -v openssl >/dev/null || missing+=(openssl)
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

# ---- the clusters (up-cluster) ---------------------------------------------------------------

cluster_redis_ports() { local i; for i in 0 1 2 3 4 5; do echo $((CLUSTER_REDIS_PORT + i)); done; }

cluster_tls_dir() { echo "$CLUSTER_DIR/redis/tls"; }

# redis-cli against one node of the cluster, with its password and TLS.
cluster_cli() {
  local port="$1"; shift
  local args=(-h 127.0.0.1 -p "$port")
  [[ "$CLUSTER_REDIS_TLS" == 1 ]] && args+=(--tls --cacert "$(cluster_tls_dir)/ca.crt")
  cluster_redis_cli "${args[@]}" "$@"
}

# redis-cli with the cluster's password, if any (in the environment, not on the command line).
cluster_redis_cli() {
  if [[ -n "$CLUSTER_REDIS_PASSWORD" ]]; then REDISCLI_AUTH="$CLUSTER_REDIS_PASSWORD" redis-cli "$@"; else redis-cli "$@"; fi
}

make_cluster_tls() {
  local dir; dir="$(cluster_tls_dir)"
  [[ -f "$dir/redis.crt" ]] && return 0
  mkdir -p "$dir"
  openssl req -x509 -new -nodes -newkey rsa:2048 -keyout "$dir/ca.key" -out "$dir/ca.crt" \
    -days 3650 -subj "/CN=NSM local CA" >/dev/null 2>&1
  openssl req -new -nodes -newkey rsa:2048 -keyout "$dir/redis.key" -out "$dir/redis.csr" \
    -subj "/CN=127.0.0.1" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/san.ext"
  openssl x509 -req -in "$dir/redis.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/redis.crt" -days 3650 -extfile "$dir/san.ext" >/dev/null 2>&1
  chmod 644 "$dir/redis.key"
}

start_cluster_redis_node() {
  local port="$1" dir="$CLUSTER_DIR/redis/$1"
  local pidfile="$dir/redis.pid"
  if pid_alive "$pidfile" && port_open "$port"; then return 0; fi
  port_open "$port" && fail "port $port is taken by another process: stop it or set NSM_CLUSTER_REDIS_PORT"
  port_open $((port + 10000)) && fail "port $((port + 10000)) (cluster bus of $port) is taken: stop it or set NSM_CLUSTER_REDIS_PORT"
  mkdir -p "$dir"
  local args=(--bind 127.0.0.1 --dir "$dir" --pidfile "$pidfile" --logfile "$dir/redis.log"
    --daemonize yes --save "" --appendonly yes --appendfsync everysec
    --cluster-enabled yes --cluster-config-file "$dir/nodes.conf"
    --cluster-node-timeout "$CLUSTER_NODE_TIMEOUT_MS" --cluster-port $((port + 10000)))
  if [[ -n "$CLUSTER_REDIS_PASSWORD" ]]; then
    args+=(--requirepass "$CLUSTER_REDIS_PASSWORD" --masterauth "$CLUSTER_REDIS_PASSWORD")
  fi
  if [[ "$CLUSTER_REDIS_TLS" == 1 ]]; then
    local tls; tls="$(cluster_tls_dir)"
    args+=(--port 0 --tls-port "$port" --tls-cluster yes --tls-replication yes --tls-auth-clients no
      --tls-cert-file "$tls/redis.crt" --tls-key-file "$tls/redis.key" --tls-ca-cert-file "$tls/ca.crt")
  else
    args+=(--port "$port")
  fi
  redis-server "${args[@]}" >/dev/null || { show_log_tail "$dir/redis.log"; fail "redis cluster node $port failed to start"; }
  local waited=0
  until [[ "$(cluster_cli "$port" ping 2>/dev/null)" == "PONG" ]]; do
    if ((waited >= 30)); then show_log_tail "$dir/redis.log"; fail "redis cluster node $port did not answer within 15s"; fi
    sleep 0.5; waited=$((waited + 1))
  done
}

cluster_field() { cluster_cli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }

start_redis_cluster() {
  [[ "$CLUSTER_REDIS_TLS" == 1 ]] && make_cluster_tls
  local port ports=() started=0
  for port in $(cluster_redis_ports); do
    if pid_alive "$CLUSTER_DIR/redis/$port/redis.pid" && port_open "$port"; then continue; fi
    start_cluster_redis_node "$port"; started=$((started + 1))
  done
  for port in $(cluster_redis_ports); do ports+=("127.0.0.1:$port"); done
  # Slots are assigned once; a node started again rejoins from its nodes.conf (a former master
  # comes back as a replica of the node that took over).
  if [[ "$(cluster_field "$CLUSTER_REDIS_PORT" cluster_slots_assigned)" == "0" ]]; then
    local log="$CLUSTER_DIR/redis/create.log" tls=()
    [[ "$CLUSTER_REDIS_TLS" == 1 ]] && tls=(--tls --cacert "$(cluster_tls_dir)/ca.crt")
    cluster_redis_cli "${tls[@]}" --cluster create "${ports[@]}" \
      --cluster-replicas 1 --cluster-yes >"$log" 2>&1 || { show_log_tail "$log"; fail "redis-cli --cluster create failed"; }
    started=$((started + 1))
  fi
  local waited=0
  until cluster_ready; do
    if ((waited >= 120)); then
      show_log_tail "$CLUSTER_DIR/redis/$CLUSTER_REDIS_PORT/redis.log"
      cluster_cli "$CLUSTER_REDIS_PORT" cluster nodes >&2 || true
      fail "the redis cluster did not reach state ok with 3 masters and 3 replicas within 60s"
    fi
    sleep 0.5; waited=$((waited + 1))
  done
  local scheme=redis; [[ "$CLUSTER_REDIS_TLS" == 1 ]] && scheme=rediss
  if ((started == 0)); then
    say "redis cluster already running on 127.0.0.1:${CLUSTER_REDIS_PORT}-$((CLUSTER_REDIS_PORT + 5))"
  else
    say "redis cluster started on 127.0.0.1:${CLUSTER_REDIS_PORT}-$((CLUSTER_REDIS_PORT + 5)) (3 masters, 3 replicas; $scheme://127.0.0.1:$CLUSTER_REDIS_PORT/0; logs $CLUSTER_DIR/redis/)"
  fi
}

# Every node answers, agrees the cluster is ok, and there are 3 masters each with a replica.
cluster_ready() {
  local port
  for port in $(cluster_redis_ports); do
    [[ "$(cluster_field "$port" cluster_state)" == "ok" ]] || return 1
  done
  local nodes; nodes="$(cluster_cli "$CLUSTER_REDIS_PORT" cluster nodes 2>/dev/null)" || return 1
  [[ "$(awk '$3 ~ /master/ && $3 !~ /fail/' <<<"$nodes" | wc -l)" == 3 ]] || return 1
  [[ "$(awk '$3 ~ /slave/ && $3 !~ /fail/ && $8 == "connected"' <<<"$nodes" | wc -l)" == 3 ]] || return 1
  # And every replica has its master's data (a replica still in its first sync cannot take over).
  for port in $(cluster_redis_ports); do
    local replication; replication="$(cluster_cli "$port" info replication 2>/dev/null | tr -d '\r')"
    if grep -q '^role:slave' <<<"$replication"; then
      grep -q '^master_link_status:up' <<<"$replication" || return 1
    fi
  done
}

cluster_kafka_voters() {
  local i voters=()
  for i in 1 2 3; do voters+=("$i@127.0.0.1:$((CLUSTER_KAFKA_CONTROLLER_PORT + i - 1))"); done
  (IFS=,; echo "${voters[*]}")
}

start_kafka_cluster_node() {
  local id="$1" dir="$CLUSTER_DIR/kafka/$1"
  local port=$((CLUSTER_KAFKA_PORT + id - 1)) controller=$((CLUSTER_KAFKA_CONTROLLER_PORT + id - 1))
  local pidfile="$dir/kafka.pid" log="$dir/kafka.log"
  if pid_alive "$pidfile" && port_open "$port"; then return 1; fi
  port_open "$port" && fail "port $port is taken by another process: stop it or set NSM_CLUSTER_KAFKA_PORT"
  port_open "$controller" && fail "port $controller is taken by another process: stop it or set NSM_CLUSTER_KAFKA_CONTROLLER_PORT"
  mkdir -p "$dir/data"
  sed -e "s|@NODE_ID@|$id|g" -e "s|@KAFKA_PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$controller|g" \
    -e "s|@VOTERS@|$(cluster_kafka_voters)|g" -e "s|@DATA_DIR@|$dir/data|g" \
    "$ROOT/scripts/kafka/cluster.properties.in" >"$dir/server.properties"
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    kafka_java kafka.tools.StorageTool format -t "$(cat "$CLUSTER_DIR/kafka/cluster.id")" \
      -c "$dir/server.properties" --ignore-formatted >"$dir/format.log" 2>&1 \
      || { show_log_tail "$dir/format.log"; fail "kafka storage format failed for node $id"; }
  fi
  : >"$log"
  nohup bash -c "exec java -Xms512m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile='$ROOT/scripts/kafka/log4j2.properties' \
    -cp '$KAFKA_LIBS/*' kafka.Kafka '$dir/server.properties'" >"$log" 2>&1 &
  echo $! >"$pidfile"
}

start_kafka_cluster() {
  mkdir -p "$CLUSTER_DIR/kafka"
  if [[ ! -s "$CLUSTER_DIR/kafka/cluster.id" ]]; then
    kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 >"$CLUSTER_DIR/kafka/cluster.id"
  fi
  # The three start together: each waits for a quorum of controllers.
  local id started=()
  for id in 1 2 3; do start_kafka_cluster_node "$id" && started+=("$id"); done
  if ((${#started[@]} == 0)); then
    say "kafka cluster already running on 127.0.0.1:${CLUSTER_KAFKA_PORT}-$((CLUSTER_KAFKA_PORT + 2))"; return 0
  fi
  local waited=0 dir
  for id in "${started[@]}"; do
    dir="$CLUSTER_DIR/kafka/$id"
    until grep -q "Kafka Server started" "$dir/kafka.log" 2>/dev/null && port_open $((CLUSTER_KAFKA_PORT + id - 1)); do
      if ! pid_alive "$dir/kafka.pid"; then show_log_tail "$dir/kafka.log"; fail "kafka cluster node $id exited during start-up"; fi
      if ((waited >= KAFKA_START_TIMEOUT)); then show_log_tail "$dir/kafka.log"; fail "kafka cluster node $id did not start within ${KAFKA_START_TIMEOUT}s"; fi
      sleep 1; waited=$((waited + 1))
    done
  done
  say "kafka cluster started on 127.0.0.1:${CLUSTER_KAFKA_PORT}-$((CLUSTER_KAFKA_PORT + 2)) (3 brokers, KRaft, replication 3, min.insync.replicas 2, ${waited}s; logs $CLUSTER_DIR/kafka/)"
}

cmd_up_cluster() {
  cmd_install
  mkdir -p "$CLUSTER_DIR"
  case "${1:-all}" in
    redis) start_redis_cluster ;;
    kafka) start_kafka_cluster ;;
    all) start_redis_cluster; start_kafka_cluster ;;
    *) fail "up-cluster takes redis, kafka or nothing (both)" ;;
  esac
}

cmd_down_cluster() {
  local port id
  # The brokers stop together: one left alone waits for a quorum of controllers that is gone.
  for id in 1 2 3; do stop_pidfile "kafka-$id" "$CLUSTER_DIR/kafka/$id/kafka.pid" & done
  wait
  for port in $(cluster_redis_ports); do stop_pidfile "redis-$port" "$CLUSTER_DIR/redis/$port/redis.pid" & done
  wait
}

cmd_status_cluster() {
  local rc=0 port id
  for port in $(cluster_redis_ports); do
    status_line "redis-$port" "$CLUSTER_DIR/redis/$port/redis.pid" "$port" || rc=1
  done
  for id in 1 2 3; do
    status_line "kafka-$id" "$CLUSTER_DIR/kafka/$id/kafka.pid" $((CLUSTER_KAFKA_PORT + id - 1)) || rc=1
  done
  return $rc
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
  up-cluster) cmd_up_cluster "${2:-all}" ;;
  down-cluster) cmd_down_cluster ;;
  status-cluster) cmd_status_cluster ;;
  *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
