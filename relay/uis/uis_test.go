package uis

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

const seedToken = "токен из пункта 9" // UIS's instructions leave "the token from step 9" in the template

// wantFixture is what each testdata/<event>.json must give.
func wantFixture(event string) Notification {
	in := Notification{
		Event: event, CallSessionID: "3061237823", CommunicationID: "781204512", Mnemonic: event,
		Direction:    DirectionIn,
		ContactPhone: "79121234567", VirtualPhone: "74951505050", CallingPhone: "79121234567", CalledPhone: "74951505050",
		ContactName: "Иванов Иван Иванович",
		StartTime:   utc("2024-05-01T12:00:00+03:00"), NotificationTime: utc("2024-05-01T12:00:01+03:00"),
		Token: seedToken,
	}
	anna := func(n Notification) Notification {
		n.EmployeeIDs = []string{"12345"}
		n.EmployeeName = "Петрова Анна"
		n.EmployeePhone = "79031112233"
		n.Extension = "101"
		return n
	}
	switch event {
	case EventOutgoingCallStarted:
		return anna(Notification{
			Event: event, CallSessionID: "3061240001", CommunicationID: "781204600", Mnemonic: event,
			Direction:    DirectionOut,
			ContactPhone: "79161234567", VirtualPhone: "74951505050", CallingPhone: "74951505050", CalledPhone: "79161234567",
			StartTime: utc("2024-05-01T12:10:00+03:00"), NotificationTime: utc("2024-05-01T12:10:00+03:00"),
			Token: seedToken,
		})
	case EventConversationStarted:
		n := anna(in)
		n.AnswerTime = utc("2024-05-01T12:00:12+03:00")
		n.NotificationTime = utc("2024-05-01T12:00:12+03:00")
		return n
	case EventCallFinished:
		n := anna(in)
		n.EmployeeIDs = []string{"12345", "12346"}
		n.FinishTime = utc("2024-05-01T12:03:40+03:00")
		n.NotificationTime = utc("2024-05-01T12:03:41+03:00")
		n.FinishReason = "subscriber_disconnects"
		n.TalkTime = 208 * time.Second
		n.WaitTime = 12 * time.Second
		n.RecordURLs = []string{"https://app.uiscom.ru/system/media/talk/3061237823/0b7e4ac2f1d9/"}
		n.Tags = []string{"Доставка", "VIP"}
		return n
	}
	return in
}

func TestParseFixtures(t *testing.T) {
	for _, ev := range events {
		t.Run(ev, func(t *testing.T) {
			got, err := Parse(ev, fixture(t, ev+".json"), Moscow)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantFixture(ev), got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestParseSubstitutions fills UIS's templates in every way a customer's
// template and UIS's substitution might combine, and expects the same
// notification each time.
func TestParseSubstitutions(t *testing.T) {
	for _, ev := range events {
		for name, enc := range map[string]func(any) string{"json": asJSON, "text": asText} {
			t.Run(ev+"/"+name, func(t *testing.T) {
				body := render(template(t, ev), sampleValues(ev), enc)
				got, err := Parse(ev, []byte(body), nil)
				if err != nil {
					t.Fatalf("%v\n%s", err, body)
				}
				want := wantFixture(ev)
				want.Repaired = name == "text"
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("(-want +got)\n%s", diff)
				}
			})
		}
		t.Run(ev+"/strings", func(t *testing.T) {
			// a template with quoted placeholders: every value a string
			tmpl := placeholderRE.ReplaceAllString(template(t, ev), `"{{$1}}"`)
			body := render(tmpl, sampleValues(ev), func(v any) string {
				s := asString(v)
				return s[1 : len(s)-1] // inside the template's quotes
			})
			got, err := Parse(ev, []byte(body), nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, body)
			}
			if diff := cmp.Diff(wantFixture(ev), got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
		t.Run(ev+"/json in quotes", func(t *testing.T) {
			// quoted placeholders filled with JSON values: ""Ivan"", "[1,2]"
			tmpl := placeholderRE.ReplaceAllString(template(t, ev), `"{{$1}}"`)
			body := render(tmpl, sampleValues(ev), asJSON)
			got, err := Parse(ev, []byte(body), nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, body)
			}
			want := wantFixture(ev)
			want.Repaired = true
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestParseTemplateVerbatim: a template UIS did not fill in is refused for
// want of a call session, and says so.
func TestParseTemplateVerbatim(t *testing.T) {
	for _, ev := range events {
		_, err := Parse(ev, []byte(template(t, ev)), nil)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "call_session_id" || !strings.Contains(fe.Reason, "{{call_session_id}}") {
			t.Errorf("%s: err = %v", ev, err)
		}
	}
}

func TestParseNullsAndAbsence(t *testing.T) {
	for _, ev := range events {
		values := map[string]any{"call_session_id": "abc-1"}
		got, err := Parse(ev, []byte(render(template(t, ev), values, asJSON)), nil)
		if err != nil {
			t.Fatal(err)
		}
		want := Notification{Event: ev, CallSessionID: "abc-1", Token: seedToken}
		switch ev {
		case EventIncomingCallStarted:
			want.Direction = DirectionIn
		case EventOutgoingCallStarted:
			want.Direction = DirectionOut
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s all null (-want +got)\n%s", ev, diff)
		}
	}
	got, err := Parse(EventCallFinished, []byte(`{"call_session_id":1}`), nil)
	if err != nil || got.Token != "" || got.Direction != "" {
		t.Errorf("minimal body: %+v, %v", got, err)
	}
}

func TestParseTolerates(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		check   func(Notification) bool
		ignored []string
	}{
		{"big session id kept exactly", `{"call_session_id":123456789012345678901234567890}`,
			func(n Notification) bool { return n.CallSessionID == "123456789012345678901234567890" }, nil},
		{"session id in an array", `{"call_session_id":[null,"",42,43]}`,
			func(n Notification) bool { return n.CallSessionID == "42" }, nil},
		{"session id padded", `{"call_session_id":"  42 "}`,
			func(n Notification) bool { return n.CallSessionID == "42" }, nil},
		{"scalars as arrays", `{"call_session_id":1,"contact_phone_number":["79121234567"],"employee_full_name":["A","B"]}`,
			func(n Notification) bool { return n.ContactPhone == "79121234567" && n.EmployeeName == "A" }, nil},
		{"lists as scalars and strings", `{"call_session_id":1,"employee_id":"5","employee_ids":"5, 6;7 8","tag_names":"VIP","record_file_links":"http://a.example/1 https://b.example/2"}`,
			func(n Notification) bool {
				return cmp.Equal(n.EmployeeIDs, []string{"5", "6", "7", "8"}) && cmp.Equal(n.Tags, []string{"VIP"}) &&
					cmp.Equal(n.RecordURLs, []string{"http://a.example/1", "https://b.example/2"})
			}, nil},
		{"list in a string", `{"call_session_id":1,"tag_names":"[\"a, b\",\"c\"]","employee_ids":"[1,2]"}`,
			func(n Notification) bool {
				return cmp.Equal(n.Tags, []string{"a, b", "c"}) && cmp.Equal(n.EmployeeIDs, []string{"1", "2"})
			}, nil},
		{"employee names fall back", `{"call_session_id":1,"employee_full_name":null,"employee_full_names":["Анна","Олег"]}`,
			func(n Notification) bool { return n.EmployeeName == "Анна" }, nil},
		{"employee ids merged", `{"call_session_id":1,"employee_id":3,"employee_ids":[1,3,2],"last_talked_employee_id":9}`,
			func(n Notification) bool { return cmp.Equal(n.EmployeeIDs, []string{"3", "1", "2", "9"}) }, nil},
		{"booleans", `{"call_session_id":1,"is_lost":"1"}`, func(n Notification) bool { return n.IsLost }, nil},
		{"boolean true string", `{"call_session_id":1,"is_lost":"TRUE"}`, func(n Notification) bool { return n.IsLost }, nil},
		{"bad boolean", `{"call_session_id":1,"is_lost":"maybe"}`, func(n Notification) bool { return !n.IsLost }, []string{"is_lost"}},
		{"durations", `{"call_session_id":1,"talk_time_duration":"00:03:28","total_wait_time_duration":12.9}`,
			func(n Notification) bool { return n.TalkTime == 208*time.Second && n.WaitTime == 12*time.Second }, nil},
		{"wait time fallback", `{"call_session_id":1,"wait_time_duration":"7"}`,
			func(n Notification) bool { return n.WaitTime == 7*time.Second }, nil},
		{"bad durations", `{"call_session_id":1,"talk_time_duration":-1,"total_wait_time_duration":"1e300"}`,
			func(n Notification) bool { return n.TalkTime == 0 && n.WaitTime == 0 }, []string{"talk_time_duration", "total_wait_time_duration"}},
		{"times", `{"call_session_id":1,"start_time":"2024-05-01T12:00:00+03:00","answer_time":1714554012,"finish_time":"01.05.2024 12:03:40","notification_timestamp":1714554221000}`,
			func(n Notification) bool {
				return n.StartTime.Equal(utc("2024-05-01T09:00:00Z")) && n.AnswerTime.Equal(utc("2024-05-01T09:00:12Z")) &&
					n.FinishTime.Equal(utc("2024-05-01T09:03:40Z")) && n.NotificationTime.Equal(utc("2024-05-01T09:03:41Z"))
			}, nil},
		{"bad times", `{"call_session_id":1,"start_time":"yesterday","answer_time":12,"finish_time":{"t":1}}`,
			func(n Notification) bool {
				return n.StartTime.IsZero() && n.AnswerTime.IsZero() && n.FinishTime.IsZero()
			},
			[]string{"start_time", "answer_time", "finish_time"}},
		{"direction spelled out", `{"call_session_id":1,"direction":"Outgoing"}`,
			func(n Notification) bool { return n.Direction == DirectionOut }, nil},
		{"unknown direction", `{"call_session_id":1,"direction":"sideways"}`,
			func(n Notification) bool { return n.Direction == "" }, []string{"direction"}},
		{"unsubstituted placeholders", `{"call_session_id":1,"contact_phone_number":"{{contact_phone_number}}","tag_names":["{{tag_names}}"]}`,
			func(n Notification) bool { return n.ContactPhone == "" && n.Tags == nil }, nil},
		{"objects ignored", `{"call_session_id":1,"contact_full_name":{"first":"I"},"tag_names":[{"x":1},"ok"]}`,
			func(n Notification) bool { return n.ContactName == "" && cmp.Equal(n.Tags, []string{"ok"}) },
			[]string{"contact_full_name", "tag_names"}},
		{"bad links dropped", `{"call_session_id":1,"record_file_links":["ftp://x/1","/rel","javascript:alert(1)","https://ok.example/r"]}`,
			func(n Notification) bool { return cmp.Equal(n.RecordURLs, []string{"https://ok.example/r"}) },
			[]string{"record_file_links", "record_file_links", "record_file_links"}},
		{"long phone ignored", `{"call_session_id":1,"contact_phone_number":"` + strings.Repeat("7", MaxPhoneLen+1) + `"}`,
			func(n Notification) bool { return n.ContactPhone == "" }, []string{"contact_phone_number"}},
		{"long name cut", `{"call_session_id":1,"contact_full_name":"` + strings.Repeat("я", MaxNameLen+5) + `"}`,
			func(n Notification) bool { return n.ContactName == strings.Repeat("я", MaxNameLen) }, nil},
		{"names folded", "{\"call_session_id\":1,\"contact_full_name\":\"  Иванов\\n\\tИван\\u0000 \"}",
			func(n Notification) bool { return n.ContactName == "Иванов Иван" }, nil},
		{"token alias", `{"call_session_id":1,"token":" t0k "}`, func(n Notification) bool { return n.Token == "t0k" }, nil},
		{"both tokens equal", `{"call_session_id":1,"token":"a","ud_channel_token":"a"}`, func(n Notification) bool { return n.Token == "a" }, nil},
		{"numeric token", `{"call_session_id":1,"ud_channel_token":12345}`, func(n Notification) bool { return n.Token == "12345" }, nil},
		{"token with control char", `{"call_session_id":1,"ud_channel_token":"a\u0000b"}`,
			func(n Notification) bool { return n.Token == "" }, []string{"ud_channel_token"}},
		{"too many tags", `{"call_session_id":1,"tag_names":[` + strings.Repeat(`"t",`, MaxList) + `"u","v"]}`,
			func(n Notification) bool { return cmp.Equal(n.Tags, []string{"t"}) }, []string{"tag_names"}},
		{"tags split at commas only", `{"call_session_id":1,"tag_names":"Доставка, VIP клиент;new"}`,
			func(n Notification) bool {
				return cmp.Equal(n.Tags, []string{"Доставка", "VIP клиент", "new"})
			}, nil},
		{"null in quotes", `{"call_session_id":1,"contact_full_name":"null","employee_id":"NULL"}`,
			func(n Notification) bool { return n.ContactName == "" && n.EmployeeIDs == nil }, nil},
		{"unknown fields", `{"call_session_id":1,"whatever":{"deep":[1,2,{"x":null}]}}`,
			func(n Notification) bool { return n.CallSessionID == "1" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Parse(EventCallFinished, []byte(tt.body), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(n) {
				t.Errorf("unexpected notification: %+v", n)
			}
			if diff := cmp.Diff(tt.ignored, n.Ignored); diff != "" {
				t.Errorf("Ignored (-want +got)\n%s", diff)
			}
		})
	}
}

func TestParseLocation(t *testing.T) {
	body := []byte(`{"call_session_id":1,"start_time":"2024-05-01 12:00:00"}`)
	for _, tc := range []struct {
		loc  *time.Location
		want string
	}{
		{nil, "2024-05-01T09:00:00Z"},
		{Moscow, "2024-05-01T09:00:00Z"},
		{time.UTC, "2024-05-01T12:00:00Z"},
		{time.FixedZone("YEKT", 5*3600), "2024-05-01T07:00:00Z"},
	} {
		n, err := Parse(EventIncomingCallStarted, body, tc.loc)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.StartTime.Format(time.RFC3339); got != tc.want {
			t.Errorf("loc %v: %s, want %s", tc.loc, got, tc.want)
		}
	}
}

func TestParseRefusals(t *testing.T) {
	tests := []struct {
		name, event, body, field string
	}{
		{"unknown event", "call_started", `{"call_session_id":1}`, "event"},
		{"empty event", "", `{"call_session_id":1}`, "event"},
		{"event with slash", "call_finished/", `{"call_session_id":1}`, "event"},
		{"empty body", EventCallFinished, "", "body"},
		{"array body", EventCallFinished, `[{"call_session_id":1}]`, "body"},
		{"string body", EventCallFinished, `"x"`, "body"},
		{"broken json", EventCallFinished, `{"call_session_id":1,`, "body"},
		{"two pairs on a broken line", EventCallFinished, `{"call_session_id":1,"start_time":2024-05-01 12:00:00}`, "body"},
		{"no session", EventCallFinished, `{"direction":"in"}`, "call_session_id"},
		{"null session", EventCallFinished, `{"call_session_id":null}`, "call_session_id"},
		{"empty session", EventCallFinished, `{"call_session_id":"  "}`, "call_session_id"},
		{"empty array session", EventCallFinished, `{"call_session_id":[]}`, "call_session_id"},
		{"object session", EventCallFinished, `{"call_session_id":{"id":1}}`, "call_session_id"},
		{"bool session", EventCallFinished, `{"call_session_id":true}`, "call_session_id"},
		{"float session", EventCallFinished, `{"call_session_id":1.5}`, "call_session_id"},
		{"exponent session", EventCallFinished, `{"call_session_id":3.06e9}`, "call_session_id"},
		{"session with space", EventCallFinished, `{"call_session_id":"30 61"}`, "call_session_id"},
		{"session with control", EventCallFinished, `{"call_session_id":"30\u000161"}`, "call_session_id"},
		{"long session", EventCallFinished, `{"call_session_id":"` + strings.Repeat("1", MaxIDLen+1) + `"}`, "call_session_id"},
		{"placeholder session", EventCallFinished, `{"call_session_id":"{{call_session_id}}"}`, "call_session_id"},
		{"direction contradicts incoming", EventIncomingCallStarted, `{"call_session_id":1,"direction":"out"}`, "direction"},
		{"direction contradicts outgoing", EventOutgoingCallStarted, `{"call_session_id":1,"direction":"in"}`, "direction"},
		{"tokens differ", EventCallFinished, `{"call_session_id":1,"ud_channel_token":"a","token":"b"}`, "token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.event, []byte(tt.body), nil)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *FieldError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("field = %q (%v), want %q", fe.Field, err, tt.field)
			}
			if !strings.HasPrefix(err.Error(), "uis: "+tt.field+": ") {
				t.Errorf("message %q does not name the field", err)
			}
			if unknown := errors.Is(err, ErrUnknownEvent); unknown != (tt.field == "event") {
				t.Errorf("errors.Is(ErrUnknownEvent) = %v", unknown)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := wantFixture(EventCallFinished)
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*Notification)
		field  string
	}{
		{"event", func(n *Notification) { n.Event = "ring" }, "event"},
		{"session", func(n *Notification) { n.CallSessionID = "" }, "call_session_id"},
		{"direction", func(n *Notification) { n.Direction = "up" }, "direction"},
		{"phone", func(n *Notification) { n.ContactPhone = " 7" }, "contact_phone_number"},
		{"employee id", func(n *Notification) { n.EmployeeIDs = []string{"1", "a b"} }, "employee_ids[1]"},
		{"link", func(n *Notification) { n.RecordURLs = []string{"file:///etc/passwd"} }, "record_file_links[0]"},
		{"tag", func(n *Notification) { n.Tags = []string{""} }, "tag_names[0]"},
		{"talk time", func(n *Notification) { n.TalkTime = -time.Second }, "talk_time_duration"},
		{"finish time", func(n *Notification) { n.FinishTime = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC) }, "finish_time"},
		{"token", func(n *Notification) { n.Token = strings.Repeat("t", MaxTokenLen+1) }, "ud_channel_token"},
	}
	for _, tt := range tests {
		n := wantFixture(EventCallFinished)
		tt.change(&n)
		var fe *FieldError
		if err := n.Validate(); !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: err = %v, want field %q", tt.name, err, tt.field)
		}
	}
}
