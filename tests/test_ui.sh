#!/bin/sh
# test_ui.sh - the terminal UI as a person meets it, driven through tmux:
# replay the example trace, visit every view, search, select, zoom, step the
# time cursor, resize (80x24 works, 60x20 says the terminal is too small),
# quit and check the terminal came back; then live mode on the CPU with a
# tiny model, pause, switch toggles (apply, a refusal), pin A and compare
# with B (the fused variant), quit. TAP output. Without tmux everything is SKIPped.
#
# Waits poll the screen until the expected text shows (with a generous cap),
# so nothing here depends on how fast the machine is.
# SAVE_SCREENS=DIR writes one captured screen per view into DIR.
GS=${GPTSCOPE:-./gptscope}
EXAMPLES=${GS_EXAMPLES:-$(dirname "$0")/../examples}
TRACE=$EXAMPLES/gpt2-tiny.gst
if ! command -v tmux >/dev/null 2>&1; then
    echo "1..0 # SKIP tmux not installed"
    exit 0
fi
if [ ! -f "$TRACE" ]; then
    echo "1..0 # SKIP $TRACE not found"
    exit 0
fi
TMP=$(mktemp -d)
SOCK="$TMP/tmux.sock"
tm() { tmux -S "$SOCK" "$@"; }
trap 'tm kill-server 2>/dev/null; rm -rf "$TMP"' EXIT
n=0
fails=0
ok() { # ok STATUS NAME
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else
        echo "not ok $n - $2"
        fails=$((fails + 1))
        sed 's/^/#   /' "$TMP/screen"
    fi
}

cap() { tm capture-pane -p -t ui >"$TMP/screen" 2>/dev/null; }
# wait_for PATTERN: polls the screen until PATTERN (grep -E) shows; 1 if it never does.
wait_for() {
    i=0
    while [ $i -lt 300 ]; do
        cap
        grep -Eq -- "$1" "$TMP/screen" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
keys() { tm send-keys -t ui "$@"; }
save() { [ -n "${SAVE_SCREENS:-}" ] && cap && cp "$TMP/screen" "$SAVE_SCREENS/$1.txt"; return 0; }

# The program runs in a shell that prints its exit status and stays, so the
# test can see what the terminal looks like after it quits.
# Each start gets a server on a socket of its own: killing the last session
# makes its server exit, and a new session made at once on the same socket
# could reach that exiting server ("server exited unexpectedly" on a loaded
# machine, failing every test of the next part).
runs=0
start() { # start W H CMD...
    w=$1 h=$2
    shift 2
    tm kill-server 2>/dev/null
    runs=$((runs + 1))
    SOCK="$TMP/tmux$runs.sock"
    tm -f /dev/null new-session -d -s ui -x "$w" -y "$h" \
        "env LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=screen-256color $* ; echo GS-EXITED \$?; sleep 600"
}

# ---- replay --------------------------------------------------------------
start 100 30 "$GS" replay "$TRACE"
wait_for 'REPLAY gpt2-tiny.gst'
ok $? "replay opens the UI with the file named in the status bar"
wait_for 'host op' && grep -q 'host step' "$TMP/screen" && grep -q 'no device tracks' "$TMP/screen"
ok $? "timeline: host step/layer/op tracks, says there are no device tracks (CPU trace)"
save timeline-100x30

keys l
wait_for 'level step'
ok $? "timeline: l selects the next item; its details show (level, duration)"
grep -q 'duration' "$TMP/screen"
ok $? "timeline: selected item has a duration"
before=$(grep 'across' "$TMP/screen")
keys +
wait_for 'across' && after=$(grep 'across' "$TMP/screen")
i=0
while [ "$before" = "$after" ] && [ $i -lt 100 ]; do sleep 0.1; cap; after=$(grep 'across' "$TMP/screen"); i=$((i + 1)); done
[ "$before" != "$after" ]
ok $? "timeline: + zooms in (the span across the screen changes)"
keys j j l
wait_for 'level op'
keys Enter
wait_for 'level op'
ok $? "timeline: j moves to the op track, Enter drills into the selected op"
keys ']'
wait_for '^step 1 '
ok $? "timeline: ] moves the time cursor to the next step"
keys /
keys -l matmul
keys Enter
wait_for "'matmul': [0-9]+ match"

ok $? "timeline: / search counts and highlights matches"
save timeline-selected-100x30

keys 2
wait_for 'zoom: 40 steps' && grep -q 'layer 0' "$TMP/screen"
ok $? "flame: icicle over the whole recording (40 steps > layer 0 ...)"
save flame-100x30
keys /
keys -l norm_mlp
keys Enter
wait_for 'frames? match'
ok $? "flame: search reports matching frames"
keys n
keys Enter
wait_for 'zoom: 40 steps > layer [0-9]+ > norm_mlp'
ok $? "flame: n goes to the next match, Enter zooms into it"
keys BSpace
wait_for 'zoom: 40 steps > layer [0-9]+$|zoom: 40 steps > layer [0-9]+ *$'
ok $? "flame: Backspace zooms back out to the parent"

keys 3
wait_for 'metrics were not collected' && wait_for '--metrics-every'
ok $? "memory: says metrics were not collected and how to get them"
save memory-100x30
keys 4
wait_for 'KV cache at step' && grep -q 'occupancy' "$TMP/screen"
ok $? "KV cache: block map header and occupancy over time"
save kv-100x30
keys 5
wait_for 'Optimizations of this recording' && grep -q 'weights  *fp32' "$TMP/screen" &&
    grep -q 'no variant figures in this recording' "$TMP/screen"
ok $? "toggles: the recording's optimization settings"
save toggles-100x30
keys 6
wait_for 'Compare: A against B' && grep -q 'has no comparison' "$TMP/screen" && grep -q 'gptscope compare A.yaml B.yaml' "$TMP/screen"
ok $? "compare: a recording without a pin says so, and names gptscope compare"
save compare-100x30
keys 7
wait_for 'Keys' && grep -q 'F10' "$TMP/screen"
ok $? "help: lists the keys"
save help-100x30
keys '?'
wait_for 'Compare: A against B'
ok $? "? again goes back to the view before help"
keys Tab
wait_for 'Keys'
ok $? "Tab switches to the next view"

tm resize-window -t ui -x 80 -y 24
keys 1
wait_for 'host op' && ! grep -q 'too small' "$TMP/screen"
ok $? "80x24: the timeline draws"
save timeline-80x24
keys 2
wait_for 'zoom:'
save flame-80x24
keys 4
wait_for 'KV cache at step'
save kv-80x24
keys 1
tm resize-window -t ui -x 60 -y 20
wait_for 'terminal too small: 60x20'
ok $? "60x20: a clear 'terminal too small' message"
tm resize-window -t ui -x 100 -y 30
wait_for 'host op'
ok $? "growing back redraws the view"

keys q
wait_for 'GS-EXITED 0'
ok $? "q quits with status 0"
[ "$(tm display-message -p -t ui '#{alternate_on}')" = "0" ]
ok $? "the terminal left the alternate screen"
! grep -q 'host op' "$TMP/screen"
ok $? "the UI is gone from the screen after quitting"

# ---- replay in ASCII with NO_COLOR ------------------------------------------
start 100 30 env NO_COLOR=1 "$GS" replay --ascii "$TRACE"
wait_for 'host op'
! grep -q '█' "$TMP/screen" && grep -q 'host step' "$TMP/screen"
ok $? "--ascii with NO_COLOR draws without Unicode blocks"
save timeline-ascii-100x30
keys F10
wait_for 'GS-EXITED 0'
ok $? "F10 quits"

# ---- SIGTERM restores the terminal ------------------------------------------
start 100 30 "$GS" replay "$TRACE"
wait_for 'host op'
pid=$(pgrep -P "$(tm display-message -p -t ui '#{pane_pid}')" 2>/dev/null | head -1)
if [ -n "$pid" ]; then
    kill -TERM "$pid"
    wait_for 'GS-EXITED'
    [ "$(tm display-message -p -t ui '#{alternate_on}')" = "0" ]
    ok $? "SIGTERM: the terminal is restored"
else
    n=$((n + 1)); echo "ok $n # SKIP pgrep could not find the process"
fi

# ---- live on the CPU ----------------------------------------------------------
start 120 32 "$GS" live --model gpt2-tiny --backend cpu --threads 1
wait_for 'LIVE' && wait_for '[1-9][0-9]* tok/s'
ok $? "live: the status bar shows LIVE and tokens/s"
wait_for 'host op'
ok $? "live: the timeline draws the running model"
save live-timeline-120x32
keys Space
wait_for 'PAUSED'
ok $? "live: Space pauses the engine"
keys 2
wait_for 'recent steps'
ok $? "live: flame aggregates recent steps"
keys Space
wait_for ' LIVE'

# ---- live toggles: switch attention, refuse sinks without a window ----------
keys 5
wait_for 'Optimization toggles' && wait_for 'current #1'
ok $? "toggles: settings and the cost table with the baseline column"
grep -q 'not measured' "$TMP/screen" && grep -q 'n/a (no device metrics)' "$TMP/screen"
ok $? "toggles: unmeasured quality and DRAM say so instead of a figure"
keys j j j j Enter
wait_for 'pending: attention='
ok $? "toggles: Enter steps attention; the pending line shows it"
keys a
wait_for 'variant 2 running: attention=' && wait_for 'current #2'
ok $? "toggles: a builds the variant, swaps it in, the cost table gets its column"
wait_for 'toggled at step [0-9]+: attention='
ok $? "toggles: the switch is in the variant history (a toggle marker in the store)"
keys j j j Enter a
wait_for 'refused, the running variant stays: optimizations.sinks'
ok $? "toggles: sinks without a window is refused in one line naming the option"
grep -q 'current #2' "$TMP/screen" && grep -q 'sinks  *0' "$TMP/screen" && grep -q ' LIVE' "$TMP/screen"
ok $? "toggles: after the refusal the running variant stays and keeps running"
save toggles-live-100x30
# ---- compare: pin A, toggle fusion, B runs; A and B side by side ---------
keys 6
wait_for 'Nothing is pinned. Press p'
ok $? "compare: unpinned, the view says how to pin (and names gptscope compare)"
keys p
wait_for 'A = #2 pinned' && wait_for 'B = none yet'
ok $? "compare: p pins the running variant as A"
# the toggles cursor stayed on sinks (two rows above fusion)
keys 5 j j
wait_for '> fusion'
keys Enter a
wait_for 'variant 3 running: fusion='
ok $? "compare: toggling fusion builds variant 3"
keys 6
wait_for 'A = #2 pinned   B = #3 running: fusion=' && wait_for 'per op \(all layers\) +A +B +delta +ratio verdict' &&
    wait_for 'ms/token .* (faster|slower|noise)'
ok $? "compare: A and B columns with delta, ratio and a verdict"
grep -Eq '^  (matmul_qkv|attention|matmul_up) .*(faster|slower|noise)' "$TMP/screen"
ok $? "compare: per-op rows of A and B"
save compare-live-100x30
keys NPage NPage
wait_for 'differential flame' && wait_for 'layer 0' && grep -q 'per kernel: no kernel events in the store' "$TMP/screen"
ok $? "compare: scrolling shows the diff flame (step > layer > op); no per-kernel rows on the CPU, saying why"
keys p
wait_for 'Nothing is pinned'
ok $? "compare: p again unpins"
keys q
wait_for 'GS-EXITED 0'
ok $? "live: q quits with status 0"
[ "$(tm display-message -p -t ui '#{alternate_on}')" = "0" ]
ok $? "live: the terminal left the alternate screen"

echo "1..$n"
[ $fails -eq 0 ]
