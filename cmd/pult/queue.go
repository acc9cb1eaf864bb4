package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
)

// queue prints the supervisor's board and refreshes it in place until
// interrupted; --json prints one snapshot.
func (c *cli) queue(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("queue", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one snapshot as JSON and exit")
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for the relay")
	pos, code, ok := c.parse(fs, args, "queue [--json]")
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return c.fail(exitUsage, "queue takes no arguments")
	}
	login, code := c.credentials()
	if code != 0 {
		return code
	}
	boards := make(chan agent.Event, 1)
	a, err := agent.New(agent.Config{
		RelayURL: login.RelayURL, Token: login.Token, Insecure: login.Insecure, Logger: c.log,
		OnEvent: func(ev agent.Event) {
			if ev.Kind != agent.EventQueue {
				return
			}
			select { // keep only the latest board
			case <-boards:
			default:
			}
			boards <- ev
		},
	})
	if err != nil {
		return c.fail(exitUsage, "%v", err)
	}
	a.WatchQueue(true)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(rctx) }()
	defer func() { cancel(); <-done }()

	tty := isTerminal(c.stdout)
	var board *wire.QueueSnapshot
	first := time.NewTimer(*timeout)
	defer first.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case ev := <-boards:
			if ev.Err != "" {
				return c.fail(exitError, "the queue board is not available: %s", ev.Err)
			}
			board = ev.Queue
			if *asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				enc.Encode(board)
				return exitOK
			}
			c.renderBoard(board, tty)
		case <-tick.C:
			if board != nil && tty {
				c.renderBoard(board, tty) // the wait and status timers move
			}
		case <-first.C:
			if board == nil {
				return c.fail(exitOffline, "no queue board from %s within %s", login.RelayURL, *timeout)
			}
		case err := <-done:
			done <- err
			var se *agent.StopError
			if errors.As(err, &se) {
				return c.stopped(se)
			}
			return exitOK
		case <-ctx.Done():
			return exitOK
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (c *cli) renderBoard(b *wire.QueueSnapshot, tty bool) {
	var sb strings.Builder
	if tty {
		sb.WriteString("\x1b[H\x1b[2J") // home, clear: refresh in place
	}
	writeBoard(&sb, b, time.Now())
	if !tty {
		sb.WriteString("\n")
	}
	io.WriteString(c.stdout, sb.String())
}

// writeBoard writes the board as text.
func writeBoard(w io.Writer, b *wire.QueueSnapshot, now time.Time) {
	loc, err := time.LoadLocation(b.TimeZone)
	if err != nil {
		loc = time.Local
	}
	t := b.Totals
	fmt.Fprintf(w, "Queue at %s (%s)   service level %.0f%% within %d s\n\n",
		now.In(loc).Format("Mon 2 Jan 15:04:05"), b.TimeZone, t.ServiceLevel()*100, b.ServiceLevelSeconds)

	fmt.Fprintf(w, "Waiting: %d\n", len(b.Waiting))
	waiting := append([]wire.WaitingCall(nil), b.Waiting...)
	sort.Slice(waiting, func(i, j int) bool { return waiting[i].Since.Before(waiting[j].Since) })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, wc := range waiting {
		line := wc.LineDisplay
		if wc.Site != "" {
			line = strings.TrimSpace(wc.Site + " " + line)
		}
		fmt.Fprintf(tw, "  %s\t%s\twaiting %s\trings %s\n", orDash(wc.PhoneDisplay, wc.Phone), orDash(line, ""),
			agent.Clock(now.Sub(wc.Since)), orDash(strings.Join(wc.Ringing, ", "), ""))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nOperators: %d\n", len(b.Operators))
	ops := append([]wire.QueueOperator(nil), b.Operators...)
	sort.Slice(ops, func(i, j int) bool { return ops[i].Code < ops[j].Code })
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tCODE\tSTATUS\tFOR\tCALL\tIN\tANSWERED\tMISSED\tOUT\tAVG TALK")
	for _, op := range ops {
		call := "—"
		if op.Call != nil {
			call = fmt.Sprintf("%s %s %s", orDash(op.Call.PhoneDisplay, op.Call.Phone), op.Call.State, agent.Clock(now.Sub(op.Call.Since)))
		}
		k := op.Counters
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", op.Name, op.Code, op.Status,
			agent.Clock(now.Sub(op.Since)), call, k.Incoming, k.Answered, k.Missed, k.Outgoing, agent.Clock(k.AvgTalk()))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nToday (%s): incoming %d, answered %d, missed %d, outgoing %d; wait avg %s, longest %s; talk avg %s\n",
		b.Day, t.Incoming, t.Answered, t.Missed, t.Outgoing, agent.Clock(t.AvgWait()),
		agent.Clock(time.Duration(t.WaitMaxSeconds)*time.Second), agent.Clock(t.AvgTalk()))
}

func orDash(s, alt string) string {
	if s != "" {
		return s
	}
	if alt != "" {
		return alt
	}
	return "—"
}
