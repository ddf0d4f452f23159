# SPDX-License-Identifier: Apache-2.0
# bench/backends.sh: sourced by bench/run (with BUILD_OSSL set, or
# `bench/run --backends` alone).  The TLS backends side by side, per run
# interleaved and rotated like part 1, into $OUT/backends.csv:
#   - handshakes per wall and per CPU second, full and resumed, of libmesh
#     on each backend (bench/micro --only handshakes --tls V: client and
#     server in one process, CPU of both) with TLS 1.2 and, where the
#     backend has it, TLS 1.3; the share of "resumed" dials that resumed;
#   - `openssl s_time -new` / `-reuse` against `openssl s_server` with the
#     same suite and version (TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256, TLS 1.3
#     TLS_AES_128_GCM_SHA256), CPU of both processes; each connection
#     fetches a 3-byte file (-www / -WWW) as libmesh's dials read one byte:
#     a TLS 1.3 client that reads nothing closes before its ticket arrives
#     and never resumes (s_time -reuse without -www: 1% resumed); the
#     TLS 1.3 s_server sends one session ticket per new connection
#     (-num_tickets 1, OpenSSL's default is two) as the libmesh OpenSSL
#     server does (SSL_CTX_set_num_tickets(.., 1)), so both do the same
#     work; the CSV's '# s_server tickets' line says so for report.py;
#   - bytes per idle pooled mTLS connection (bench/micro --only idle) per
#     backend and version;
#   - system calls per request per side (bench/syscalls BUILD, the part-1
#     Cn configuration under strace; backend's default version), unless
#     SYSCALLS=0 or --smoke.
# Rows: source,backend,tls,metric,run,value; '#' lines: date, command,
# load, libraries, negotiated suites.  Needs from bench/run: W (certs), B
# (unused), BUILD, BUILD_OSSL, RUNS, SMOKE, OUT, quiet, start, port,
# wait_port, cpu_ticks, now_s, HZ, LAST_RUNNABLE.

backends_part() { # backends_part COMMAND_TEXT -> $OUT/backends.csv
  local csv="$OUT/backends.csv" bk_load0 run v item i k
  bk_load0=$(cut -d' ' -f1-3 /proc/loadavg)
  local -a items=() # "backend:build" of each libmesh build, then s_time
  local b be t13
  for b in "$BUILD" $BUILD_OSSL; do
    make -C "$b" -s bench/micro tools/meshctl >/dev/null || return 1
    be=$("$b/tools/meshctl" --version | sed -n 's/^tls backend: \([a-z]*\).*/\1/p')
    t13=$("$b/tools/meshctl" --version | sed -n 's/^tls13: //p')
    items+=("$be:$b:$t13")
  done
  items+=("s_time:-:yes")
  # s_server per version, serving a 3-byte file from $W
  printf 'hi\n' > "$W/small.txt"
  local P12 P13
  P12=$(port); P13=$(port)
  start BK_SS12 sh -c "cd '$W' && exec openssl s_server -accept 127.0.0.1:$P12 -cert server.crt \
    -key server.key -CAfile ca.crt -Verify 1 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 -tls1_2 \
    -quiet -naccept 100000000 -WWW"
  start BK_SS13 sh -c "cd '$W' && exec openssl s_server -accept 127.0.0.1:$P13 -cert server.crt \
    -key server.key -CAfile ca.crt -Verify 1 -ciphersuites TLS_AES_128_GCM_SHA256 -tls1_3 \
    -num_tickets 1 -quiet -naccept 100000000 -WWW"
  wait_port $P12 && wait_port $P13 || { echo "backends: s_server not up" >&2; return 1; }
  local st_time; st_time=$([ "$SMOKE" -eq 1 ] && echo 1 || echo 3)
  {
    echo "# date: $(date -u '+%Y-%m-%d %H:%M') UTC"
    echo "# command: $1"
    echo "# libraries: $(for it in "${items[@]}"; do b=${it#*:}; b=${b%%:*}; [ "$b" = - ] && continue
      "$b/tools/meshctl" --version | sed -n 's/^tls backend: //p'; done | paste -sd, - | sed "s/,/, /g"); s_time: $(openssl version | cut -d" " -f1-2)"
    echo "# s_server tickets: TLS 1.3 1 per new connection (-num_tickets 1)"
    echo "source,backend,tls,metric,run,value"
  } > "$csv"
  MICROARGS="--ca $W/ca.crt --server-cert $W/server.crt --server-key $W/server.key --client-cert $W/client.crt --client-key $W/client.key"
  for run in $(seq "$RUNS"); do
    for v in 1.2 1.3; do
      # rotate the order between runs, as part 1 does
      k=$(( (run - 1) % ${#items[@]} ))
      for item in "${items[@]:$k}" "${items[@]:0:$k}"; do
        be=${item%%:*}; b=${item#*:}; t13=${b##*:}; b=${b%%:*}
        [ $v = 1.3 ] && [ "$t13" != yes ] && continue
        quiet
        if [ "$be" = s_time ]; then
          bk_s_time "$v" new "$run" "$st_time" >> "$csv"
          quiet
          bk_s_time "$v" reuse "$run" "$st_time" >> "$csv"
        else
          "$b/bench/micro" $MICROARGS --runs 1 --only handshakes --tls $v \
            $([ "$SMOKE" -eq 1 ] && echo --smoke) 2>>"$W/micro.err" |
            awk -F, -v be="$be" -v v="$v" -v run="$run" -v rn="$LAST_RUNNABLE" '
              /^# handshakes: / { sub(/^# handshakes: /, ""); print "# negotiated " be " " v ": " $0; next }
              /^handshakes_/ { m = $1; sub(/^handshakes_/, "", m); print "libmesh," be "," v "," m "," run "," $2 }
              END { print "libmesh," be "," v ",runnable_before," run "," rn }' >> "$csv"
          "$b/bench/micro" $MICROARGS --runs 1 --only idle --tls $v 2>>"$W/micro.err" |
            awk -F, -v be="$be" -v v="$v" -v run="$run" \
              '/^(bytes_per_idle_conn|rss_per_idle_conn_kib),/ { print "libmesh," be "," v "," $1 "," run "," $2 }' >> "$csv"
        fi
      done
    done
    if [ "$SMOKE" -eq 0 ] && [ "${SYSCALLS:-1}" != 0 ] && command -v strace >/dev/null; then
      for item in "${items[@]}"; do
        be=${item%%:*}; b=${item#*:}; b=${b%%:*}
        [ "$be" = s_time ] && continue
        quiet
        bash bench/syscalls "$b" 2>>"$W/syscalls.err" |
          awk -v be="$be" -v run="$run" '/^(client|server): [0-9.]+ syscalls\/req/ {
              s = $1; sub(/:$/, "", s); print "libmesh," be ",default,syscalls_per_req_" s "," run "," $2 }' >> "$csv"
      done
    fi
  done
  kill "$BK_SS12" "$BK_SS13" 2>/dev/null
  echo "# load: $bk_load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end" >> "$csv"
}

bk_s_time() { # bk_s_time VERSION new|reuse RUN SECONDS -> CSV rows
  local v=$1 mode=$2 run=$3 secs=$4 p pid ciph c0 c1 t0 t1
  if [ "$v" = 1.2 ]; then p=$P12; pid=$BK_SS12; ciph="-cipher ECDHE-ECDSA-AES128-GCM-SHA256 -tls1_2"
  else p=$P13; pid=$BK_SS13; ciph="-ciphersuites TLS_AES_128_GCM_SHA256 -tls1_3"; fi
  c0=$(cpu_ticks "$pid"); t0=$(now_s)
  local TIMEFORMAT='%U %S'
  { time openssl s_time -connect 127.0.0.1:$p -$mode -time "$secs" -cert "$W/client.crt" \
      -key "$W/client.key" -CAfile "$W/ca.crt" $ciph -www /small.txt > "$W/bkst.out" 2>&1 ; } 2> "$W/bkst.cpu"
  t1=$(now_s); c1=$(cpu_ticks "$pid")
  local kind=full; [ "$mode" = reuse ] && kind=resumed
  # the marks line: one character per connection, 'r' when it resumed
  awk -v v="$v" -v run="$run" -v kind="$kind" -v t0="$t0" -v t1="$t1" -v sc=$((c1 - c0)) -v hz="$HZ" \
      -v rn="$LAST_RUNNABLE" -v cpuf="$W/bkst.cpu" '
    /^[r*tT0-9]+$/ && !/^[0-9]+$/ { marks += length($0); r += gsub(/r/, "") }
    /connections in .*s;/ && !n { n = $1 }
    END {
      getline cpu < cpuf; split(cpu, c, " "); total = c[1] + c[2] + sc / hz
      printf "s_time,openssl,%s,%s_per_s,%s,%.1f\n", v, kind, run, n / (t1 - t0)
      printf "s_time,openssl,%s,%s_per_cpu_s,%s,%.1f\n", v, kind, run, (total > 0 ? n / total : 0)
      if (kind == "resumed") printf "s_time,openssl,%s,resumed_share,%s,%.4f\n", v, run, (marks ? r / marks : 0)
      printf "s_time,openssl,%s,runnable_before_%s,%s,%s\n", v, kind, run, rn
    }' "$W/bkst.out"
}
