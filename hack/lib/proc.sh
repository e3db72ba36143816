# shellcheck shell=bash
# Starting, waiting for and stopping the processes of a local cluster.
# Source it; do not run it. Needs $state (the cluster's state directory).

# free_port: print a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_process NAME COMMAND...: run COMMAND in its own session so it
# outlives this script, logging to $state/logs/NAME.log. The process writes
# its own pid before exec, so the pid file names the real process.
start_process() {
  local proc=$1
  shift
  mkdir -p "$state/logs" "$state/pids"
  # The descriptors 7-9 hold the scripts' flock locks, and a daemon that
  # inherited one would keep the lock until it exits.
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$state/pids/$proc.pid" "$@" \
    >"$state/logs/$proc.log" 2>&1 </dev/null 7>&- 8>&- 9>&- &
  local tries=0
  until [[ -s $state/pids/$proc.pid ]]; do
    ((++tries < 50)) || sro_die "$proc did not start; see $state/logs/$proc.log"
    sleep 0.1
  done
  process_start_time "$(<"$state/pids/$proc.pid")" >"$state/pids/$proc.start"
}

# process_start_time PID: the kernel's start time of PID (field 22 of
# /proc/PID/stat), which exec keeps and pid reuse changes.
process_start_time() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  awk '{print $20}' <<<"$stat"
}

# process_alive NAME: true while the process started as NAME runs.
process_alive() {
  local pidfile=$state/pids/$1.pid pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  kill -0 "$pid" 2>/dev/null || return 1
  [[ $(process_start_time "$pid") == $(cat "$state/pids/$1.start" 2>/dev/null) ]] || return 1
  # An exited process stays a zombie until its parent reaps it. Where PID 1
  # is no init (as in some containers and VMs), that never happens.
  local stat
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# wait_until NAME SECONDS COMMAND...: poll COMMAND every 0.2 s until it
# succeeds; fail with NAME's log if NAME dies or the time runs out.
wait_until() {
  local proc=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ! process_alive "$proc"; then
      tail -n 25 "$state/logs/$proc.log" >&2
      sro_die "$proc exited during start-up; full log: $state/logs/$proc.log"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 25 "$state/logs/$proc.log" >&2
      sro_die "$proc was not ready after $seconds s; full log: $state/logs/$proc.log"
    fi
    sleep 0.2
  done
}

# stop_process NAME [SECONDS]: SIGTERM the process, SIGKILL it after SECONDS
# (default 10). Only the pid from the pid file is signalled, and only if that
# pid still runs the program recorded at start, so a reused pid is left alone.
stop_process() {
  local proc=$1 seconds=${2:-10} pidfile=$state/pids/$1.pid pid
  [[ -s $pidfile ]] || return 0
  pid=$(<"$pidfile")
  if process_alive "$proc"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + seconds))
    while process_alive "$proc" && ((SECONDS < deadline)); do
      sleep 0.2
    done
    if process_alive "$proc"; then
      sro_log "$proc did not stop after $seconds s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile" "$state/pids/$proc.start"
}
