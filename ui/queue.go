package ui

import (
	"context"
	"fmt"
	"image/color"
	"slices"
	"sort"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
)

// Thresholds the Queue window colours.
const (
	longWait         = 30 * time.Second // a call waiting longer shows red
	defaultLongBreak = 15 * time.Minute // a break or dinner longer shows red
)

// Sort orders of the operators table.
const (
	sortStatus = "status"
	sortTime   = "time"
	sortName   = "name"
)

// queueWindow is the supervisor's live board: the counters, the calls
// waiting with their wait timers, the operators (sortable, a status settable)
// and a chart of the last hours. The board is watched only while it is open.
type queueWindow struct {
	a        *App
	w        fyne.Window
	board    *wire.QueueSnapshot
	summary  *widget.Label
	level    *widget.Label
	waiting  *widget.List
	noWait   *widget.Label
	table    *widget.Table
	ops      []wire.QueueOperator // sorted as shown
	sortBy   string
	selected string // operator id
	setBtns  []*widget.Button
	note     *widget.Label
	chart    *queueChart
	ticker   *ticker
}

// queueColumns are the operators table's headings.
var queueColumns = []string{"queue.col.name", "queue.col.code", "queue.col.status", "queue.col.for",
	"queue.col.call", "queue.col.in", "queue.col.answered", "queue.col.missed", "queue.col.out"}

func (a *App) openQueue() {
	if a.op == nil || a.op.Role != wire.RoleSupervisor {
		return
	}
	if a.queueW == nil {
		a.queueW = newQueueWindow(a)
		if s := a.sess; s != nil {
			s.agent.WatchQueue(true)
		}
	}
	a.queueW.w.Show()
	a.queueW.w.RequestFocus()
}

func newQueueWindow(a *App) *queueWindow {
	q := &queueWindow{a: a, sortBy: sortStatus}
	tr := a.tr
	q.w = a.fa.NewWindow("pult — " + tr.T("window.queue"))
	q.w.SetIcon(AppIcon)
	q.summary = widget.NewLabel(tr.T("queue.loading"))
	q.summary.Wrapping = fyne.TextWrapWord
	q.level = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	q.level.SizeName = theme.SizeNameSubHeadingText

	q.waiting = widget.NewList(
		func() int { return q.waitingCount() },
		func() fyne.CanvasObject {
			return container.NewHBox(widget.NewLabelWithStyle("0:00", fyne.TextAlignTrailing, fyne.TextStyle{Monospace: true, Bold: true}),
				widget.NewLabel("8 (999) 999-99-99"), widget.NewLabel("line"), widget.NewLabel("rings"))
		},
		func(i widget.ListItemID, o fyne.CanvasObject) { q.fillWaiting(i, o) })
	q.noWait = widget.NewLabel(tr.T("queue.noneWaiting"))

	q.table = widget.NewTableWithHeaders(
		func() (int, int) { return len(q.ops), len(queueColumns) },
		func() fyne.CanvasObject { return widget.NewLabel("Екатерина Морозова") },
		func(id widget.TableCellID, o fyne.CanvasObject) { q.fillCell(id, o.(*widget.Label)) })
	q.table.ShowHeaderColumn = false
	q.table.CreateHeader = func() fyne.CanvasObject {
		return widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	}
	q.table.UpdateHeader = func(id widget.TableCellID, o fyne.CanvasObject) {
		if id.Col >= 0 && id.Col < len(queueColumns) {
			o.(*widget.Label).SetText(tr.T(queueColumns[id.Col]))
		}
	}
	for i, wdt := range []float32{190, 60, 80, 70, 220, 40, 80, 60, 40} {
		q.table.SetColumnWidth(i, wdt)
	}
	q.table.OnSelected = func(id widget.TableCellID) {
		if id.Row >= 0 && id.Row < len(q.ops) {
			q.selected = q.ops[id.Row].ID
		}
		q.updateButtons()
	}
	sortKeys := []string{sortStatus, sortTime, sortName}
	sortLabels := []string{tr.T("queue.sort.status"), tr.T("queue.sort.time"), tr.T("queue.sort.name")}
	sortSel := widget.NewRadioGroup(sortLabels, func(s string) {
		if i := slices.Index(sortLabels, s); i >= 0 {
			q.sortBy = sortKeys[i]
			q.render()
		}
	})
	sortSel.Horizontal = true
	sortSel.SetSelected(sortLabels[0])

	for _, st := range wire.Statuses {
		b := widget.NewButton(tr.status(st), func() { q.setStatus(st) })
		q.setBtns = append(q.setBtns, b)
	}
	q.note = widget.NewLabel("")
	q.note.Wrapping = fyne.TextWrapWord
	q.chart = newQueueChart(tr)

	setRow := container.NewHBox(widget.NewLabel(tr.T("queue.setSelected")))
	for _, b := range q.setBtns {
		setRow.Add(b)
	}
	top := container.NewVBox(
		q.level,
		q.summary,
		widget.NewLabelWithStyle(tr.T("queue.waiting"), fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
	)
	waitingBox := container.NewStack(q.noWait, q.waiting)
	waitingScroll := container.NewGridWrap(fyne.NewSize(900, 120), waitingBox)
	opsHeader := container.NewBorder(nil, nil, widget.NewLabelWithStyle(tr.T("queue.operators"), fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		container.NewHBox(widget.NewLabel(tr.T("queue.sortBy")), sortSel))
	bottom := container.NewVBox(setRow, q.note,
		widget.NewLabelWithStyle(tr.T("queue.chartTitle"), fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		q.chart)
	q.w.SetContent(container.NewPadded(container.NewBorder(
		container.NewVBox(top, waitingScroll, opsHeader), bottom, nil, nil, q.table)))
	q.w.Resize(fyne.NewSize(940, 720))
	q.w.SetOnClosed(func() {
		q.stopTicker()
		if s := a.sess; s != nil {
			s.agent.WatchQueue(false)
		}
		a.queueW = nil
	})
	a.bindKeys(q.w, func() { q.w.Close() })
	q.updateButtons()
	return q
}

// show takes a new board (UI goroutine).
func (q *queueWindow) show(b *wire.QueueSnapshot, errText string) {
	if errText != "" {
		q.summary.SetText(q.a.tr.T("queue.unavailable", "Err", errText))
		return
	}
	q.board = b
	q.render()
	q.startTicker()
}

func (q *queueWindow) now() time.Time { return q.a.serverNow() }

func (q *queueWindow) render() {
	b := q.board
	if b == nil {
		return
	}
	t, tr := b.Totals, q.a.tr
	q.summary.SetText(tr.T("queue.summary",
		"Waiting", tr.N("queue.waitingCalls", len(b.Waiting)),
		"Incoming", t.Incoming, "Answered", t.Answered, "Missed", t.Missed, "Outgoing", t.Outgoing,
		"AvgWait", agent.Clock(t.AvgWait()), "MaxWait", agent.Clock(time.Duration(t.WaitMaxSeconds)*time.Second),
		"AvgTalk", agent.Clock(t.AvgTalk())))
	q.level.SetText(tr.T("queue.serviceLevel", "Percent", fmt.Sprintf("%.0f", t.ServiceLevel()*100), "Seconds", b.ServiceLevelSeconds))
	if t.ServiceLevel() < 0.8 {
		q.level.Importance = widget.DangerImportance
	} else {
		q.level.Importance = widget.SuccessImportance
	}
	q.level.Refresh()

	q.ops = append(q.ops[:0], b.Operators...)
	now := q.now()
	sort.SliceStable(q.ops, func(i, j int) bool {
		x, y := q.ops[i], q.ops[j]
		switch q.sortBy {
		case sortTime:
			return now.Sub(x.Since) > now.Sub(y.Since)
		case sortName:
			return x.Name < y.Name
		}
		if statusRank(x.Status) != statusRank(y.Status) {
			return statusRank(x.Status) < statusRank(y.Status)
		}
		return x.Name < y.Name
	})
	if len(b.Waiting) == 0 {
		q.noWait.Show()
	} else {
		q.noWait.Hide()
	}
	q.waiting.Refresh()
	q.table.Refresh()
	q.chart.set(b.History)
	q.updateButtons()
}

func statusRank(s wire.Status) int {
	switch s {
	case wire.StatusFree:
		return 0
	case wire.StatusBusy:
		return 1
	case wire.StatusDinner:
		return 2
	case wire.StatusBreak:
		return 3
	}
	return 4
}

func (q *queueWindow) sortedWaiting() []wire.WaitingCall {
	if q.board == nil {
		return nil
	}
	w := append([]wire.WaitingCall(nil), q.board.Waiting...)
	sort.Slice(w, func(i, j int) bool { return w[i].Since.Before(w[j].Since) })
	return w
}

func (q *queueWindow) waitingCount() int {
	if q.board == nil {
		return 0
	}
	return len(q.board.Waiting)
}

func (q *queueWindow) fillWaiting(i widget.ListItemID, o fyne.CanvasObject) {
	w := q.sortedWaiting()
	if i >= len(w) {
		return
	}
	c := w[i]
	row := o.(*fyne.Container).Objects
	wait := q.now().Sub(c.Since)
	timer := row[0].(*widget.Label)
	timer.SetText(agent.Clock(wait))
	timer.Importance = widget.MediumImportance
	if wait > longWait {
		timer.Importance = widget.DangerImportance
	}
	timer.Refresh()
	row[1].(*widget.Label).SetText(orText(c.PhoneDisplay, c.Phone))
	line := c.LineDisplay
	if c.Site != "" {
		line = c.Site + " · " + line
	}
	row[2].(*widget.Label).SetText(orText(line, "—"))
	rings := q.a.tr.T("queue.ringsNobody")
	if len(c.Ringing) > 0 {
		rings = q.a.tr.T("queue.rings", "Codes", joinCodes(c.Ringing))
	}
	row[3].(*widget.Label).SetText(rings)
	o.Refresh()
}

func joinCodes(codes []string) string {
	s := ""
	for i, c := range codes {
		if i > 0 {
			s += ", "
		}
		s += c
	}
	return s
}

func orText(s, alt string) string {
	if s != "" {
		return s
	}
	return alt
}

func (q *queueWindow) fillCell(id widget.TableCellID, l *widget.Label) {
	if id.Row < 0 || id.Row >= len(q.ops) {
		return
	}
	op := q.ops[id.Row]
	now := q.now()
	l.Importance = widget.MediumImportance
	l.TextStyle = fyne.TextStyle{}
	switch id.Col {
	case 0:
		l.SetText(op.Name)
	case 1:
		l.SetText(op.Code)
	case 2:
		l.TextStyle.Bold = true
		l.Importance = statusImportance(op.Status)
		l.SetText(q.a.tr.status(op.Status))
	case 3:
		in := now.Sub(op.Since)
		if (op.Status == wire.StatusBreak || op.Status == wire.StatusDinner) && in > q.a.longBreak() {
			l.Importance = widget.DangerImportance
		}
		l.SetText(agent.Clock(in))
	case 4:
		if op.Call == nil {
			l.SetText("—")
			break
		}
		l.SetText(fmt.Sprintf("%s · %s %s", orText(op.Call.PhoneDisplay, op.Call.Phone), q.a.tr.queueCallState(op.Call), agent.Clock(now.Sub(op.Call.Since))))
	case 5:
		l.SetText(fmt.Sprint(op.Counters.Incoming))
	case 6:
		l.SetText(fmt.Sprint(op.Counters.Answered))
	case 7:
		if op.Counters.Missed > 0 {
			l.Importance = widget.DangerImportance
		}
		l.SetText(fmt.Sprint(op.Counters.Missed))
	case 8:
		l.SetText(fmt.Sprint(op.Counters.Outgoing))
	}
	l.Refresh()
}

func (w *words) queueCallState(c *wire.QueueCall) string {
	if c.State == wire.CallTalking {
		return w.T("queue.call.talking")
	}
	if c.Direction == wire.DirectionOut {
		return w.T("queue.call.calling")
	}
	return w.T("queue.call.ringing")
}

func statusImportance(s wire.Status) widget.Importance {
	switch s {
	case wire.StatusFree:
		return widget.SuccessImportance
	case wire.StatusBusy:
		return widget.DangerImportance
	case wire.StatusDinner, wire.StatusBreak:
		return widget.WarningImportance
	}
	return widget.LowImportance
}

func (q *queueWindow) updateButtons() {
	ok := false
	if q.board != nil {
		for _, op := range q.board.Operators {
			ok = ok || op.ID == q.selected
		}
	}
	for _, b := range q.setBtns {
		if ok && q.a.sess != nil {
			b.Enable()
		} else {
			b.Disable()
		}
	}
}

// setStatus sets the selected operator's status, through the relay.
func (q *queueWindow) setStatus(st wire.Status) {
	s, id := q.a.sess, q.selected
	if s == nil || id == "" {
		return
	}
	name := id
	for _, op := range q.ops {
		if op.ID == id {
			name = op.Name
		}
	}
	a, tr := q.a, q.a.tr
	q.note.Importance = widget.MediumImportance
	q.note.SetText(tr.T("queue.setting", "Name", name, "Status", tr.status(st)))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_, err := s.agent.SetOperatorStatus(ctx, id, st)
		a.do(func() {
			if a.queueW != q {
				return
			}
			if err != nil {
				q.note.Importance = widget.DangerImportance
				q.note.SetText(tr.T("queue.setFailed", "Name", name, "Status", tr.status(st), "Err", err))
				return
			}
			q.note.Importance = widget.SuccessImportance
			q.note.SetText(tr.T("queue.setDone", "Name", name, "Status", tr.status(st)))
		})
	}()
}

// The timers (waits, time in status) tick while the window is open.
func (q *queueWindow) startTicker() {
	if q.ticker != nil {
		return
	}
	a := q.a
	q.ticker = a.everySecond(func() {
		if a.queueW == q {
			q.waiting.Refresh()
			q.table.Refresh()
		}
	})
}

func (q *queueWindow) stopTicker() {
	if q.ticker != nil {
		q.ticker.stop()
		q.ticker = nil
	}
}

// longBreak is how long a break may last before it shows red.
func (a *App) longBreak() time.Duration {
	if a.cfg.LongBreak > 0 {
		return a.cfg.LongBreak
	}
	return defaultLongBreak
}

// chartSlots is the chart's width in one-minute samples: four hours.
const chartSlots = 4 * 60

// queueChart draws the history: calls waiting as bars, the service level as
// a line (0–100 %), oldest on the left.
type queueChart struct {
	widget.BaseWidget
	tr      *words
	samples []wire.QueueSample
}

func newQueueChart(tr *words) *queueChart {
	c := &queueChart{tr: tr}
	c.ExtendBaseWidget(c)
	return c
}

func (c *queueChart) set(s []wire.QueueSample) {
	c.samples = s
	c.Refresh()
}

func (c *queueChart) CreateRenderer() fyne.WidgetRenderer {
	r := &chartRenderer{c: c, bg: canvas.NewRectangle(theme.Color(theme.ColorNameInputBackground))}
	r.empty = canvas.NewText(c.tr.T("queue.noHistory"), theme.Color(theme.ColorNamePlaceHolder))
	return r
}

type chartRenderer struct {
	c     *queueChart
	bg    *canvas.Rectangle
	empty *canvas.Text
	objs  []fyne.CanvasObject
	size  fyne.Size
}

func (r *chartRenderer) MinSize() fyne.Size { return fyne.NewSize(300, 110) }
func (r *chartRenderer) Destroy()           {}
func (r *chartRenderer) Objects() []fyne.CanvasObject {
	return append([]fyne.CanvasObject{r.bg, r.empty}, r.objs...)
}
func (r *chartRenderer) Layout(s fyne.Size) {
	r.size = s
	r.bg.Resize(s)
	r.build()
}

func (r *chartRenderer) Refresh() {
	r.build()
	canvas.Refresh(r.c)
}

func (r *chartRenderer) build() {
	s := r.c.samples
	r.objs = r.objs[:0]
	w, h := r.size.Width, r.size.Height
	if len(s) == 0 || w <= 0 || h <= 0 {
		r.empty.Show()
		r.empty.Move(fyne.NewPos(8, 8))
		return
	}
	r.empty.Hide()
	maxWait := 1
	for _, p := range s {
		maxWait = max(maxWait, p.Waiting)
	}
	// A fixed time axis: the last chartSlots minutes, the newest on the
	// right, so an hour of history does not look like a day's.
	slots := max(len(s), chartSlots)
	step := w / float32(slots)
	off := float32(slots - len(s))
	barCol := theme.Color(theme.ColorNamePrimary)
	for i, p := range s {
		bh := h * float32(p.Waiting) / float32(maxWait) * 0.9
		if bh <= 0 {
			continue
		}
		bar := canvas.NewRectangle(fade(barCol))
		bar.Move(fyne.NewPos((off+float32(i))*step, h-bh))
		bar.Resize(fyne.NewSize(max(step-1, 1), bh))
		r.objs = append(r.objs, bar)
	}
	lineCol := theme.Color(theme.ColorNameSuccess)
	for i := 1; i < len(s); i++ {
		l := canvas.NewLine(lineCol)
		l.StrokeWidth = 2
		l.Position1 = fyne.NewPos((off+float32(i)-0.5)*step, h-h*float32(s[i-1].ServiceLevel)*0.95)
		l.Position2 = fyne.NewPos((off+float32(i)+0.5)*step, h-h*float32(s[i].ServiceLevel)*0.95)
		r.objs = append(r.objs, l)
	}
	label := canvas.NewText(r.c.tr.T("queue.chartMax", "N", maxWait), theme.Color(theme.ColorNamePlaceHolder))
	label.TextSize = theme.CaptionTextSize()
	label.Move(fyne.NewPos(4, 2))
	r.objs = append(r.objs, label)
}

func fade(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	return color.NRGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 0x90}
}
