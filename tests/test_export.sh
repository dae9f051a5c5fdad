#!/bin/sh
# test_export.sh - record a small run, then export it to Chrome JSON (.json and
# .json.gz), folded stacks and CSV; check every Chrome event against the
# schema (ph, ts, pid, tid, name present, dur >= 0) and load each file in a
# real importer (../shared/tools/trace-validate, speedscope under Node.js).
# Without node the validator checks are SKIPped, never failed.
GS=${GPTSCOPE:-./gptscope}
VALIDATE=${TRACE_VALIDATE:-$(cd "$(dirname "$0")/../.." && pwd)/shared/tools/trace-validate/validate}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
n=0
fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; fail=1; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }
check() { desc=$1; shift; if "$@" >"$TMP/out" 2>&1; then ok "$desc"; else notok "$desc"; sed 's/^/# /' "$TMP/out"; fi; }

check "record 12 steps of gpt2-tiny" "$GS" record -o "$TMP/t.gst" --model gpt2-tiny --steps 12
check "replay --summary" "$GS" replay --summary "$TMP/t.gst"
grep -q "12 steps" "$TMP/out" && ok "summary counts 12 steps" || notok "summary counts 12 steps"
for f in t.json t.json.gz t.folded t.csv; do
    check "export to $f" "$GS" export "$TMP/t.gst" -o "$TMP/$f"
done
check "export --format folded overrides the name" "$GS" export "$TMP/t.gst" -o "$TMP/f.out" --format folded
head -1 "$TMP/t.csv" | grep -q '^level,name,calls,total_us' && ok "csv header" || notok "csv header"
grep -q '^"\{0,1\}op' "$TMP/t.csv" || grep -q '^op,' "$TMP/t.csv" && ok "csv has op rows" || notok "csv has op rows"
grep -Eq '^step;layer [0-9]+;[a-z_]+ [0-9]+$' "$TMP/t.folded" && ok "folded has step;layer N;op lines" || notok "folded has step;layer N;op lines"
# bad input: exit 2, one line naming the file and a byte offset
: >"$TMP/empty.gst"
"$GS" export "$TMP/empty.gst" -o "$TMP/e.json" 2>"$TMP/err"; rc=$?
[ $rc -eq 2 ] && grep -q "empty.gst: byte offset 0" "$TMP/err" && [ "$(wc -l <"$TMP/err")" -eq 1 ] \
    && ok "empty trace: exit 2, one line with file and offset" || notok "empty trace: exit 2 ($rc: $(cat "$TMP/err"))"
head -c $(($(wc -c <"$TMP/t.gst") - 10)) "$TMP/t.gst" >"$TMP/cut.gst"
"$GS" replay --summary "$TMP/cut.gst" >/dev/null 2>"$TMP/err"; rc=$?
[ $rc -eq 0 ] && grep -q "byte offset" "$TMP/err" && ok "truncated trace: prefix replayed, warning names the offset" \
    || notok "truncated trace ($rc: $(cat "$TMP/err"))"
# SIGINT finishes the file cleanly: the reader sees the END chunk (no warning).
"$GS" record -o "$TMP/int.gst" --model gpt2-tiny --seconds 60 2>/dev/null &
pid=$!
sleep 1
kill -INT $pid
wait $pid; rc=$?
"$GS" replay --summary "$TMP/int.gst" >"$TMP/out" 2>"$TMP/err"; rc2=$?
[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ ! -s "$TMP/err" ] && grep -q "steps" "$TMP/out" \
    && ok "SIGINT during record: exit 0 and a cleanly finished file" || notok "SIGINT during record ($rc, $rc2: $(cat "$TMP/err"))"
"$GS" record --model gpt2-tiny --steps 1 >/dev/null 2>"$TMP/err"; rc=$?
[ $rc -eq 2 ] && grep -q -- "-o FILE.gst is required" "$TMP/err" && ok "record without -o: exit 2" || notok "record without -o ($rc)"
"$GS" export "$TMP/t.gst" -o "$TMP/x.bin" 2>"$TMP/err"; rc=$?
[ $rc -eq 2 ] && ok "export to an unknown extension without --format: exit 2" || notok "export unknown extension ($rc)"

if ! command -v node >/dev/null 2>&1; then
    skip "schema check: node is not installed"
    skip "trace-validate: node is not installed"
else
    cat >"$TMP/schema.js" <<'JS'
const fs = require('fs'), zlib = require('zlib');
for (const f of process.argv.slice(2)) {
  let b = fs.readFileSync(f); if (f.endsWith('.gz')) b = zlib.gunzipSync(b);
  const doc = JSON.parse(b.toString('utf8')); const ev = doc.traceEvents; let bad = 0;
  if (!Array.isArray(ev) || ev.length === 0) { console.log(f + ': no traceEvents'); process.exit(1); }
  for (const e of ev) {
    const okk = typeof e.ph === 'string' && typeof e.ts === 'number' && e.ts >= 0 && Number.isInteger(e.pid) &&
      Number.isInteger(e.tid) && typeof e.name === 'string' && e.name.length > 0 &&
      (e.ph !== 'X' || (typeof e.dur === 'number' && e.dur >= 0)) && (e.ph !== 'C' || typeof e.args === 'object');
    if (!okk && bad++ < 5) console.log(f + ': bad event ' + JSON.stringify(e));
  }
  const x = ev.filter(e => e.ph === 'X').length, c = ev.filter(e => e.ph === 'C').length;
  if (x === 0 || c === 0) { console.log(f + ': no X or no C events'); bad++; }
  console.log(f + ': ' + ev.length + ' events, ' + x + ' X, ' + c + ' C, ' + bad + ' bad');
  if (bad) process.exit(1);
}
JS
    check "schema: every event has ph, ts, pid, tid, name; dur >= 0" node "$TMP/schema.js" "$TMP/t.json" "$TMP/t.json.gz"
    if [ ! -x "$VALIDATE" ]; then
        skip "trace-validate not found at $VALIDATE"
    else
        for f in t.json t.json.gz; do
            "$VALIDATE" "$TMP/$f" >"$TMP/out" 2>&1; rc=$?
            if [ $rc -eq 0 ]; then ok "trace-validate accepts $f"; elif [ $rc -eq 3 ]; then skip "trace-validate unavailable: $(tail -1 "$TMP/out")"; else notok "trace-validate $f"; sed 's/^/# /' "$TMP/out"; fi
        done
        "$VALIDATE" --folded "$TMP/t.folded" >"$TMP/out" 2>&1; rc=$?
        if [ $rc -eq 0 ]; then ok "trace-validate accepts t.folded"; elif [ $rc -eq 3 ]; then skip "trace-validate unavailable"; else notok "trace-validate t.folded"; sed 's/^/# /' "$TMP/out"; fi
    fi
fi
echo "1..$n"
exit $fail
