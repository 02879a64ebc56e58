#!/usr/bin/env bash
# A ClickHouse cluster on loopback: 2 shards × 2 replicas of ClickHouse 18.16 and a standalone
# ZooKeeper 3.8 (Debian's `zookeeper`, on the Java 17 that is present), data under
# $AGENTTRACE_HOME/cluster. Installs what is missing; safe to run twice.
#
#   scripts/cluster.sh up     start what is not running; prints `export ...` lines
#   scripts/cluster.sh down   stop it (data stays)
#   scripts/cluster.sh env    the `export ...` lines alone
#   scripts/cluster.sh kill NODE | start NODE   stop (SIGKILL) or start one node: s1r1 s1r2 s2r1 s2r2
#
# The cluster is named `agenttrace` in every node's <remote_servers>; each node's <macros> name
# its shard (01, 02) and replica (the node's name), which the Replicated tables' ZooKeeper paths
# use. Node N (1..4) listens on HTTP 8230+N, native 9230+N, interserver 9330+N.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LOG_TAG=cluster LOG_COLOR=34
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
DIR="$AGENTTRACE_HOME/cluster"
ZK_PORT="${AGENTTRACE_ZK_PORT:-2191}"
NODES=(s1r1 s1r2 s2r1 s2r2)

node_index() { local i; for i in "${!NODES[@]}"; do [ "${NODES[$i]}" = "$1" ] && { echo $((i + 1)); return; }; done; die "no node $1 (${NODES[*]})"; }
http_port() { echo $((8230 + $(node_index "$1"))); }
tcp_port() { echo $((9230 + $(node_index "$1"))); }

# Running (a killed server not yet reaped, a zombie, is not).
alive() {
  [ -f "$1" ] || return 1
  case "$(ps -o stat= -p "$(cat "$1")" 2>/dev/null)" in "" | Z*) return 1 ;; esac
}

# ---------------------------------------------------------------- ZooKeeper
# Serving, not just running: `mntr` names the server's state only once its data is loaded.
zk_answers() { printf mntr | timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT; cat >&3; cat <&3" 2>/dev/null | grep -q zk_server_state; }

zk_up() {
  zk_answers && return 0
  # Running but slow to answer: wait for it rather than start a second one (see node_start).
  if alive "$DIR/zookeeper/pid"; then wait_for 60 ZooKeeper zk_answers; return 0; fi
  apt_ensure zookeeper
  command -v java >/dev/null || apt_ensure default-jre-headless
  mkdir -p "$DIR/zookeeper/data"
  cat >"$DIR/zookeeper/zoo.cfg" <<CFG
tickTime=2000
dataDir=$DIR/zookeeper/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,mntr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
CFG
  log "starting ZooKeeper on 127.0.0.1:$ZK_PORT"
  setsid java -Xmx256m -Dzookeeper.log.dir="$DIR/zookeeper" -cp "/usr/share/java/zookeeper.jar:/usr/share/java/*" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$DIR/zookeeper/zoo.cfg" \
    >"$DIR/zookeeper/zookeeper.log" 2>&1 </dev/null {cluster_lock}>&- &
  echo $! >"$DIR/zookeeper/pid"
  wait_for 60 ZooKeeper zk_answers
}

# ---------------------------------------------------------------- ClickHouse nodes
remote_servers() {
  local shard
  echo "<remote_servers><agenttrace>"
  for shard in 1 2; do
    echo "<shard><internal_replication>true</internal_replication>"
    for replica in 1 2; do
      echo "<replica><host>127.0.0.1</host><port>$(tcp_port "s${shard}r${replica}")</port></replica>"
    done
    echo "</shard>"
  done
  echo "</agenttrace></remote_servers>"
}

node_config() {
  local node=$1 dir="$DIR/$1" index
  index="$(node_index "$node")"
  mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log}
  clickhouse_config_xml "$dir" $((8230 + index)) $((9230 + index)) "$DIR/users.xml" "
    <interserver_http_port>$((9330 + index))</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    $(remote_servers)
    <zookeeper><node><host>127.0.0.1</host><port>$ZK_PORT</port></node><session_timeout_ms>10000</session_timeout_ms></zookeeper>
    <macros><cluster>agenttrace</cluster><shard>0${node:1:1}</shard><replica>$node</replica></macros>
    <distributed_ddl><path>/clickhouse/agenttrace/task_queue/ddl</path></distributed_ddl>" >"$dir/config.xml"
}

users_config() {
  # Durability: an insert through a Distributed table returns once each shard's replica has it
  # and the shard's other replica confirmed it (quorum 2); a write waits at most 30 s for its
  # second replica, then fails (retryable). Known problem on 18.16: the last quorum part of a
  # partition is neither merged nor mutated until another quorum insert lands there
  # (docs/cluster.md). A trace's rows share a shard: "IN (subquery)" reads each shard's own rows
  # (distributed_product_mode local).
  clickhouse_users_xml 2000000000 "<insert_distributed_sync>1</insert_distributed_sync>
            <insert_quorum>2</insert_quorum>
            <insert_quorum_timeout>30000</insert_quorum_timeout>
            <distributed_product_mode>local</distributed_product_mode>" >"$DIR/users.xml"
}

node_answers() { curl -fsS "http://127.0.0.1:$(http_port "$1")/ping" >/dev/null 2>&1; }

node_start() {
  local node=$1
  # Answering, or started and still loading: a second server would only lose the port race and
  # leave the pid file naming a dead process while the first runs on, out of reach of `kill`.
  node_answers "$node" && return 0
  alive "$DIR/$node/pid" && return 0
  node_config "$node"
  setsid /usr/sbin/clickhouse-server --config-file="$DIR/$node/config.xml" \
    >"$DIR/$node/log/stdout.log" 2>&1 </dev/null {cluster_lock}>&- &
  echo $! >"$DIR/$node/pid"
}

node_kill() {
  local pidfile="$DIR/$1/pid" i=0
  if alive "$pidfile"; then
    kill -KILL "$(cat "$pidfile")"
    # Gone before this returns, so a `start` right after does not find it still answering.
    while alive "$pidfile" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  fi
  rm -f "$pidfile"
}

print_env() {
  local urls=() node
  for node in "${NODES[@]}"; do urls+=("http://127.0.0.1:$(http_port "$node")"); done
  cat <<OUT
export CLICKHOUSE_URL='http://127.0.0.1:$(http_port s1r1)'
export CLICKHOUSE_CLUSTER='agenttrace'
export CLICKHOUSE_CLUSTER_URLS='$(IFS=,; echo "${urls[*]}")'
OUT
}

cluster_up() {
  apt_ensure clickhouse-server clickhouse-client curl
  mkdir -p "$DIR"
  zk_up
  users_config
  local node
  for node in "${NODES[@]}"; do node_start "$node"; done
  for node in "${NODES[@]}"; do wait_for 60 "ClickHouse $node" node_answers "$node"; done
  log "2 shards × 2 replicas answer on HTTP $(http_port s1r1)-$(http_port s2r2); ZooKeeper on $ZK_PORT"
}

cluster_down() {
  local node
  for node in "${NODES[@]}"; do
    if alive "$DIR/$node/pid"; then kill -TERM "$(cat "$DIR/$node/pid")" 2>/dev/null || true; fi
  done
  for node in "${NODES[@]}"; do
    local i=0
    while alive "$DIR/$node/pid" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    node_kill "$node"
  done
  if alive "$DIR/zookeeper/pid"; then
    kill -TERM "$(cat "$DIR/zookeeper/pid")"
    local i=0
    while alive "$DIR/zookeeper/pid" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    alive "$DIR/zookeeper/pid" && kill -KILL "$(cat "$DIR/zookeeper/pid")"
  fi
  rm -f "$DIR/zookeeper/pid"
  log "stopped"
}

# One command at a time: tests run side by side, and two `up`s (or an `up` and a `start`) racing
# to start the same node would leave one server running that no pid file names. The servers
# started are not handed the lock's descriptor (`{cluster_lock}>&-`): they would hold it forever.
if [ "${1:-up}" != env ]; then
  mkdir -p "$DIR"
  exec {cluster_lock}>"$DIR/.lock"
  flock "$cluster_lock"
fi

case "${1:-up}" in
  up) cluster_up; print_env ;;
  down) cluster_down ;;
  env) print_env ;;
  kill) node_kill "${2:?node}" ;;
  start) node_start "${2:?node}"; wait_for 60 "ClickHouse $2" node_answers "$2" ;;
  *) die "usage: $0 up|down|env|kill NODE|start NODE" ;;
esac
