package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
)

// The app in Russian: the same windows as the English tests, drawn from
// ru.json. Each test asks for its language, so none depends on the
// machine's locale.

func russian(c *Config) { c.Languages = []string{"ru-RU"} }

func TestRussianCard(t *testing.T) {
	newTestFyne(t)
	now := func() time.Time { return fixedNow }
	tr := newWords([]string{"ru"})
	cases := map[string]func(c *wire.Call){
		"ringing": func(c *wire.Call) {},
		"talking_you": func(c *wire.Call) {
			c.State = wire.CallTalking
			c.AnsweredAt = ptime(fixedNow.Add(-83 * time.Second))
			c.Manager.You = true
		},
		"answered_elsewhere": func(c *wire.Call) {
			c.State = wire.CallAnsweredElsewhere
			c.AnsweredBy = &wire.Party{Code: "101", Name: "Дмитрий Волков"}
		},
		"missed_new_client": func(c *wire.Call) {
			c.State = wire.CallMissed
			c.EndedAt = ptime(fixedNow.Add(-5 * time.Second))
			c.Client, c.Manager, c.ManagerState = nil, nil, wire.ManagerNone
			c.Links = &wire.Links{NewCustomer: "https://crm.example/customers/new"}
		},
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			c := demoCall()
			c.Site = "Магазин Москва"
			mod(&c)
			k := newCallCard(tr, c, cardActions{now: now})
			w := test.NewWindow(k.obj)
			defer w.Close()
			w.Resize(fyne.NewSize(cardWidth, k.obj.MinSize().Height))
			test.AssertImageMatches(t, "card/ru/"+name+".png", w.Canvas().Capture())
		})
	}
	c := demoCall()
	if got, want := tr.callTitle(c)+" / "+tr.callSummary(c),
		"Входящий звонок: 8 (916) 123-45-67 / Иван Петров · линия: Shop Moscow · 8 (495) 111-22-33 · Менеджер: Анна Смирнова, доб. 100 · свободен"; got != want {
		t.Errorf("notification\n got %q\nwant %q", got, want)
	}
}

// The tray menu in Russian: «Занят» reaches the relay as busy, and the
// missed calls are counted in Russian.
func TestRussianTray(t *testing.T) {
	ta := newTestApp(t, true, russian)
	ta.online()
	want := []string{"(Anna (100) — в сети)", "---", "✓ Свободен", "Занят", "Обед", "Перерыв", "---",
		"Позвонить…", "Недавние звонки…", "Переписки…", "---", "Выйти из аккаунта", "Закрыть pult"}
	if got := ta.menuLabels(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("menu\n got %q\nwant %q", got, want)
	}
	ta.loop.wait(func() { ta.a.tray.statuses[1].Action() })
	ta.loop.eventually(t, "busy confirmed", func() bool { return ta.a.status.Status == wire.StatusBusy && ta.a.pending == nil })
	if st := ta.relay.Status(); st.Status != wire.StatusBusy {
		t.Errorf("relay has status %q", st.Status)
	}
	var tip string
	ta.loop.wait(func() { tip = ta.a.tray.tooltip() })
	if tip != "pult — Anna: Занят (в сети)" {
		t.Errorf("tooltip %q", tip)
	}
	// Missed calls, counted: 1 пропущенный звонок, 2 пропущенных звонка…
	for _, c := range []struct {
		n     int
		label string
	}{
		{1, "Недавние звонки (1 пропущенный звонок)…"},
		{2, "Недавние звонки (2 пропущенных звонка)…"},
		{5, "Недавние звонки (5 пропущенных звонков)…"}, // the one drawn below
	} {
		n, label := c.n, c.label
		ta.loop.wait(func() {
			ta.a.recent.data.Calls = nil
			for i := range n {
				ta.a.recent.data.Calls = append(ta.a.recent.data.Calls, wire.Call{ID: string(rune('a' + i)), Direction: wire.DirectionIn,
					State: wire.CallMissed, StartedAt: time.Now()})
			}
			ta.a.refresh()
			if got := ta.a.tray.recent.Label; got != label {
				t.Errorf("%d missed: %q, want %q", n, got, label)
			}
		})
	}
	ta.menuImage(t, "tray/ru_operator_busy.png")
}

func TestRussianDialer(t *testing.T) {
	ta := newTestApp(t, true, russian)
	ta.online()
	ta.loop.wait(func() { ta.a.openDialer("") })
	d := ta.a.dialer
	ta.loop.wait(func() { test.Type(d.entry, "8 916 123 45 67") })
	ta.loop.wait(func() {
		if d.parsed.Text != "Наберём 8 (916) 123-45-67  (+7 916 123-45-67)" {
			t.Errorf("parsed %q", d.parsed.Text)
		}
	})
	ta.loop.wait(d.dial)
	ta.loop.eventually(t, "dial outcome", func() bool { return strings.HasPrefix(d.outcome.Text, "АТС звонит на ") })
	ta.loop.wait(func() {
		d.w.Resize(fyne.NewSize(380, d.w.Content().MinSize().Height))
		test.AssertImageMatches(t, "dialer/ru_dialled.png", d.w.Canvas().Capture())
	})
}

func TestRussianQueueWindow(t *testing.T) {
	ta := newTestApp(t, true, russian, func(c *Config) { c.Now = func() time.Time { return fixedNow } })
	ta.relay.SetOperator(wire.Operator{ID: "op-3", Name: "Екатерина Морозова", Code: "102", Role: wire.RoleSupervisor})
	ta.relay.SetBoard(queueBoard(fixedNow))
	ta.relay.Drop() // reconnect: hello now says supervisor
	ta.loop.eventually(t, "supervisor", func() bool { return ta.a.op != nil && ta.a.op.Role == wire.RoleSupervisor && ta.a.conn == agent.Online })
	ta.loop.wait(func() { ta.a.skew = 0; ta.a.openQueue() })
	q := ta.a.queueW
	ta.loop.eventually(t, "the board", func() bool { return q.board != nil })
	ta.loop.wait(func() {
		if !strings.HasPrefix(q.summary.Text, "В очереди 2 звонка · сегодня: входящих 10") {
			t.Errorf("summary %q", q.summary.Text)
		}
		q.w.Resize(fyne.NewSize(940, 720))
		test.AssertImageMatches(t, "queue/ru_board.png", q.w.Canvas().Capture())
	})
	// Sorting still works with the Russian labels.
	ta.loop.wait(func() {
		q.sortBy = sortName
		q.render()
		if q.ops[0].Code != "100" {
			t.Errorf("name order starts with %v", q.ops[0].Code)
		}
	})
	ta.loop.wait(func() { q.w.Close() })
}

// The relay's refusals in Russian: the app says each code in its own
// words, never the relay's English (which stays only for a code it does
// not know).
func TestRussianRefusals(t *testing.T) {
	ta := newTestApp(t, true, russian)
	ta.online()
	refuse := func(typ string, e *wire.Error) {
		ta.relay.SetHandler(func(req wire.Envelope) (string, any) {
			if req.Type == typ {
				return wire.TypeError, e
			}
			return wire.TypeReply, nil
		})
	}

	// A dial the PBX refused, in the dialer.
	refuse(wire.TypeDial, &wire.Error{Code: wire.ErrPBXRefused, Message: "the PBX refused the call (HTTP 403 Forbidden)", HTTPStatus: 403})
	ta.loop.wait(func() { ta.a.openDialer("8 916 123 45 67") })
	d := ta.a.dialer
	ta.loop.wait(d.dial)
	ta.loop.eventually(t, "refusal", func() bool { return d.outcome.Importance == widget.DangerImportance })
	ta.loop.wait(func() {
		if d.outcome.Text != "АТС отклонила звонок (HTTP 403)." {
			t.Errorf("dialer: %q", d.outcome.Text)
		}
		d.w.Resize(fyne.NewSize(380, d.w.Content().MinSize().Height))
		test.AssertImageMatches(t, "dialer/ru_refused.png", d.w.Canvas().Capture())
		d.w.Close()
	})

	// A call the CRM asked for, refused by the PBX: the relay's notice.
	// Events are applied in order, so a status event after it says when
	// the notice has been shown.
	after := func(what string) {
		ta.relay.Publish(wire.TypeStatus, wire.StatusInfo{Status: wire.StatusBreak, Source: what})
		ta.loop.eventually(t, what, func() bool { return ta.a.status.Source == what })
	}
	notice := wire.Notice{Kind: wire.NoticeDialFailed, Text: "Could not dial 8 (495) 111-22-33: the PBX refused the call (HTTP 486 Busy Here)",
		Phone: "+74951112233", Error: &wire.Error{Code: wire.ErrPBXRefused, Message: "the PBX refused the call (HTTP 486 Busy Here)", HTTPStatus: 486}}
	test.AssertNotificationSent(t, fyne.NewNotification("Звонок не сделан", "8 (495) 111-22-33: АТС отклонила звонок (HTTP 486)."), func() {
		ta.relay.Publish(wire.TypeNotice, notice)
		after("notice")
	})
	// From a relay before Notice.Error, its text is all there is.
	notice.Error = nil
	test.AssertNotificationSent(t, fyne.NewNotification("Звонок не сделан", notice.Text), func() {
		ta.relay.Publish(wire.TypeNotice, notice)
		after("old notice")
	})

	// A status change refused, at once and as a receipt after an outage.
	for _, c := range []struct {
		err  *wire.Error
		want string
	}{
		{&wire.Error{Code: wire.ErrInternal, Message: "the relay could not store the status; try again"}, "Смена статуса на «Занят» отклонена: Сервер не смог это сделать; попробуйте ещё раз."},
		{&wire.Error{Code: wire.ErrForbidden, Message: "operator revoked"}, "Смена статуса на «Занят» отклонена: Сервер не разрешает это вашей учётной записи."},
		{&wire.Error{Code: "brand_new", Message: "a reason this app has no words for"}, "Смена статуса на «Занят» отклонена: a reason this app has no words for"},
	} {
		refuse(wire.TypeSetStatus, c.err)
		test.AssertNotificationSent(t, fyne.NewNotification("Статус не изменён", c.want), func() {
			ta.loop.wait(func() { ta.a.setStatus(wire.StatusBusy) })
			ta.loop.eventually(t, "refused", func() bool { return ta.a.pending == nil })
		})
	}
	test.AssertNotificationSent(t, fyne.NewNotification("Статус не изменён",
		"Смена статуса на «Обед» отклонена: Сервер не знает такого статуса."), func() {
		ta.loop.wait(func() {
			ta.a.onEvent(ta.a.sess, agent.Event{Kind: agent.EventReceipt, Receipt: &agent.Receipt{ID: "r1", Status: wire.StatusDinner,
				Refused: &wire.Error{Code: wire.ErrInvalidStatus, Message: `unknown status "dinner"`}}}, time.Now())
		})
	})
	ta.loop.wait(func() {
		if ta.a.status.Status != wire.StatusBreak || ta.a.pending != nil {
			t.Errorf("after the refusals: status %q, pending %v", ta.a.status.Status, ta.a.pending)
		}
	})
}

// Offline, no reply and the like are said in Russian too.
func TestRussianRequestErrors(t *testing.T) {
	tr := newWords([]string{"ru"})
	for err, want := range map[error]string{
		agent.ErrOffline:                       "Нет связи с сервером.",
		fmt.Errorf("x: %w", agent.ErrNoReply):  "Сервер не ответил.",
		context.DeadlineExceeded:               "Сервер не ответил.",
		errors.New("something odd"):            "Что-то пошло не так; подробности в журнале pult.",
		&wire.Error{Code: wire.ErrRateLimited}: "Слишком много запросов; попробуйте через минуту.",
	} {
		if got := tr.requestError(err); got != want {
			t.Errorf("%v: %q, want %q", err, got, want)
		}
	}
	for err, want := range map[error]string{
		&wire.Error{Code: wire.ErrPBXRefused, Reason: wire.ReasonNoMinutes}: "На счёте Calltouch закончились минуты обратного звонка: пополните баланс обратного звонка в Calltouch.",
		&wire.Error{Code: wire.ErrPBXUnreachable, HTTPStatus: 503}:          "Calltouch недоступен; обратный звонок не заказан.",
		&wire.Error{Code: wire.ErrUnavailable}:                              "Не заказан: Сервер сейчас не принимает новых запросов; попробуйте позже.",
		fmt.Errorf("%w: the callback was not ordered", agent.ErrOffline):    "Нет связи с сервером: обратный звонок не заказан.",
	} {
		if got := tr.callbackError(err); got != want {
			t.Errorf("callback %v: %q, want %q", err, got, want)
		}
	}
	for st, want := range map[wire.TranscriptState]string{
		{State: wire.TranscriptFailed, ReasonCode: wire.TranscriptGaveUp, Reason: "Qolio did not accept it within 72h0m0s: dial tcp: timeout"}: "Ошибка: платформа контроля качества слишком долго недоступна",
		{State: wire.TranscriptFailed, ReasonCode: wire.TranscriptRejected, Reason: "operator_id is unknown"}:                                  "Ошибка: «operator_id is unknown»",
		{State: wire.TranscriptFailed}: "Ошибка: отклонено платформой контроля качества",
	} {
		if got := tr.transcriptState(st); got != want {
			t.Errorf("transcript %+v: %q, want %q", st, got, want)
		}
	}
}
