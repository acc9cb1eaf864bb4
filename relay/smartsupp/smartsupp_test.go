package smartsupp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pult/pult/relay/transcript"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ms(n int64) time.Time { return time.UnixMilli(n).UTC() }

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// TestSeedExample reads the example body of Smartsupp's documentation,
// verbatim, and checks every field of the export and of its transcript.
func TestSeedExample(t *testing.T) {
	e, err := Parse(fixture(t, "seed_export.json"))
	if err != nil {
		t.Fatal(err)
	}
	visitorFrom := "visitor:mxTiqn9adr2h39kmzAJ0FeaTGFJhmjio0R41491503012015"
	wantExport := Export{
		AccountID: "208",
		BeginAt:   ms(1427470439703),
		EndAt:     ms(1427470476687),
		Channel: Channel{
			ID: "55039", IsChat: true, IsTriggered: true, IsCompleted: true,
			Duration: 36 * time.Second, AvgResponse: 14 * time.Second, FirstResponse: 14 * time.Second,
			MessagesCount: 5, WordsCount: 11, Rating: 5,
		},
		Visitor: Visitor{
			ID: "27671", Name: "Dusan Kmet", Email: "dusan@domain.com", Note: "VIP customer",
			IPAddress: "89.235.0.55", City: "Czech Republic", CountryCode: "CZ", Country: "Brno",
			UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_8_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2272.89 Safari/537.36",
			Platform:  "MacIntel",
			Variables: map[string]Variable{
				"chatId":      {Label: "Chat ID", Value: "208"},
				"chatPackage": {Label: "Chat Package", Value: "pro"},
				"userId":      {Label: "User ID", Value: "1234"},
			},
		},
		Paths: []Path{
			{URL: "http://developers.smartsupp.com/smartsupp/hook-post", Title: "POST Hook · Smartsupp"},
			{URL: "http://developers.smartsupp.com", Title: "API · Smartsupp"},
		},
		Messages: []Message{
			{Type: MessageVisitor, From: visitorFrom, Content: "Hello", SentAt: ms(1427470439703)},
			{Type: MessageSystem, Name: "John Doe", From: "agent:3", Content: "agent.join", SentAt: ms(1427470446219)},
			{Type: MessageAgent, From: "system", Content: "This is triggered message", SentAt: ms(1427470449706), TriggeredBy: "Test Trigger"},
			{Type: MessageAgent, Name: "John Doe", From: "agent:3", Content: "Hi, how can i help you ?", SentAt: ms(1427470453772)},
			{Type: MessageVisitor, Name: "Dusan Kmet", From: visitorFrom, Content: "tanks.", SentAt: ms(1427470473124)},
			{Type: MessageSystem, Name: "Dusan Kmet", From: "system", Content: "close.visitorClose", SentAt: ms(1427470476687)},
		},
	}
	if diff := cmp.Diff(wantExport, e); diff != "" {
		t.Errorf("export (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff([]string{"3"}, e.AgentIDs()); diff != "" {
		t.Errorf("AgentIDs (-want +got)\n%s", diff)
	}

	got, err := e.Transcript()
	if err != nil {
		t.Fatal(err)
	}
	dusan := transcript.Author{Type: transcript.AuthorClient, ID: "27671", Name: "Dusan Kmet"}
	want := transcript.Transcript{
		CommunicationID: "smartsupp-55039",
		Source:          transcript.SourceSmartsupp,
		Title:           "Smartsupp chat 55039",
		Status:          transcript.StatusClosed,
		OperatorRef:     "3",
		Client:          transcript.Client{ID: "27671", Name: "Dusan Kmet", Email: "dusan@domain.com"},
		StartedAt:       ms(1427470439703),
		EndedAt:         ms(1427470476687),
		Parts: []transcript.Part{
			{ID: "0", Author: dusan, Body: "Hello", At: ms(1427470439703)},
			{ID: "2", Author: transcript.Author{Type: transcript.AuthorBot, Name: "Test Trigger"}, Body: "This is triggered message", At: ms(1427470449706)},
			{ID: "3", Author: transcript.Author{Type: transcript.AuthorOperator, ID: "3", Name: "John Doe"}, Body: "Hi, how can i help you ?", At: ms(1427470453772)},
			{ID: "4", Author: dusan, Body: "tanks.", At: ms(1427470473124)},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("transcript (-want +got)\n%s", diff)
	}
}

func TestTolerantExport(t *testing.T) {
	e, err := Parse(fixture(t, "missed_tolerant.json"))
	if err != nil {
		t.Fatal(err)
	}
	wantIgnored := []string{"visitor.variables.bad", "paths[1]", "messages[3]", "messages[5].content", "messages[7].sentAt"}
	if diff := cmp.Diff(wantIgnored, e.Ignored); diff != "" {
		t.Errorf("Ignored (-want +got)\n%s", diff)
	}
	wantChannel := Channel{
		ID: "77001", IsChat: true, IsMissed: true, Duration: 120 * time.Second, AvgResponse: 14 * time.Second,
		MessagesCount: 6, WordsCount: 20,
	}
	if diff := cmp.Diff(wantChannel, e.Channel); diff != "" {
		t.Errorf("channel (-want +got)\n%s", diff)
	}
	wantVisitor := Visitor{ID: "v-9", Email: "ivan@example.com", Group: "5", Variables: map[string]Variable{
		"plan": {Value: "gold"}, "userId": {Label: "User ID", Value: "42"},
	}}
	if diff := cmp.Diff(wantVisitor, e.Visitor); diff != "" {
		t.Errorf("visitor (-want +got)\n%s", diff)
	}
	if e.AccountID != "208" || !e.BeginAt.Equal(utc("2024-05-01T09:00:00Z")) || !e.EndAt.IsZero() {
		t.Errorf("account %q, begin %v, end %v", e.AccountID, e.BeginAt, e.EndAt)
	}
	if len(e.Messages) != 11 || e.Messages[3] != (Message{}) || e.Messages[0].Name != "Иван Петров" {
		t.Errorf("messages: %+v", e.Messages)
	}
	if diff := cmp.Diff([]string{"11", "12"}, e.AgentIDs()); diff != "" {
		t.Errorf("AgentIDs (-want +got)\n%s", diff)
	}

	got, err := e.Transcript()
	if err != nil {
		t.Fatal(err)
	}
	ivan := transcript.Author{Type: transcript.AuthorClient, ID: "v-9", Name: "Иван Петров"}
	anna := transcript.Author{Type: transcript.AuthorOperator, ID: "11", Name: "Anna"}
	boris := transcript.Author{Type: transcript.AuthorOperator, ID: "12", Name: "Boris"}
	want := transcript.Transcript{
		CommunicationID: "smartsupp-77001", Source: transcript.SourceSmartsupp, Title: "Smartsupp chat 77001",
		Status:      transcript.StatusMissed,
		OperatorRef: "11", // Anna and Boris wrote two each; Anna came first
		Client:      transcript.Client{ID: "v-9", Name: "Иван Петров", Email: "ivan@example.com"},
		StartedAt:   utc("2024-05-01T09:00:00Z"),
		EndedAt:     utc("2024-05-01T09:00:50Z"),
		Parts: []transcript.Part{
			{ID: "0", Author: ivan, Body: "Здравствуйте!\nГде мой заказ?", At: utc("2024-05-01T09:00:00Z")},
			{ID: "2", Author: anna, Body: "Добрый день! Проверяю.", At: utc("2024-05-01T09:00:10Z")},
			{ID: "4", Author: boris, Body: "Передаю коллеге.", At: utc("2024-05-01T09:00:20Z")},
			{ID: "6", Author: anna, Body: "12345", At: utc("2024-05-01T09:00:30Z")},
			{ID: "7", Author: transcript.Author{Type: transcript.AuthorOperator, ID: "12"}, Body: "typed by Boris"},
			{ID: "9", Author: ivan, Body: "Спасибо", At: utc("2024-05-01T09:00:50Z")},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("transcript (-want +got)\n%s", diff)
	}
}

func TestOfflineExport(t *testing.T) {
	e, err := Parse(fixture(t, "offline.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Transcript()
	if err != nil {
		t.Fatal(err)
	}
	at := ms(1714554000000)
	want := transcript.Transcript{
		CommunicationID: "smartsupp-88002", Source: transcript.SourceSmartsupp, Title: "Smartsupp chat 88002",
		Status:    transcript.StatusOffline, // offline wins over missed and dropped
		Client:    transcript.Client{ID: "31337", Name: "Eva", Email: "eva@example.com"},
		StartedAt: at, EndedAt: at,
		Parts: []transcript.Part{{ID: "0", Author: transcript.Author{Type: transcript.AuthorClient, ID: "31337", Name: "Eva"}, Body: "Please call me back.", At: at}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("transcript (-want +got)\n%s", diff)
	}
}

func TestParseRefusals(t *testing.T) {
	msgs := `"messages":[{"type":"visitor","from":"visitor:1","content":"hi"}]`
	tooMany := `{"channel":{"id":1},"messages":[` + strings.Repeat(`{},`, MaxMessages) + `{}]}`
	tests := []struct {
		name, body, field string
	}{
		{"empty", "", "body"},
		{"spaces", " \n ", "body"},
		{"not json", `{"channel":`, "body"},
		{"array", `[{"channel":{"id":1}}]`, "body"},
		{"string", `"x"`, "body"},
		{"null", `null`, "body"},
		{"trailing garbage", `{"channel":{"id":1},` + msgs + `} x`, "body"},
		{"no channel", `{` + msgs + `}`, "channel"},
		{"null channel", `{"channel":null,` + msgs + `}`, "channel"},
		{"channel array", `{"channel":[1],` + msgs + `}`, "channel"},
		{"channel string", `{"channel":"55039",` + msgs + `}`, "channel"},
		{"no channel id", `{"channel":{},` + msgs + `}`, "channel.id"},
		{"null channel id", `{"channel":{"id":null},` + msgs + `}`, "channel.id"},
		{"empty channel id", `{"channel":{"id":"  "},` + msgs + `}`, "channel.id"},
		{"float channel id", `{"channel":{"id":1.5},` + msgs + `}`, "channel.id"},
		{"object channel id", `{"channel":{"id":{"n":1}},` + msgs + `}`, "channel.id"},
		{"bool channel id", `{"channel":{"id":true},` + msgs + `}`, "channel.id"},
		{"channel id with space", `{"channel":{"id":"55 039"},` + msgs + `}`, "channel.id"},
		{"channel id with control", `{"channel":{"id":"55\u0000"},` + msgs + `}`, "channel.id"},
		{"long channel id", `{"channel":{"id":"` + strings.Repeat("9", MaxChannelID+1) + `"},` + msgs + `}`, "channel.id"},
		{"no messages", `{"channel":{"id":1}}`, "messages"},
		{"null messages", `{"channel":{"id":1},"messages":null}`, "messages"},
		{"messages object", `{"channel":{"id":1},"messages":{"0":{}}}`, "messages"},
		{"messages string", `{"channel":{"id":1},"messages":"hi"}`, "messages"},
		{"too many messages", tooMany, "messages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.body))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *FieldError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("field = %q (%v), want %q", fe.Field, err, tt.field)
			}
			if !strings.HasPrefix(err.Error(), "smartsupp: "+tt.field+": ") {
				t.Errorf("message %q does not name the field", err)
			}
		})
	}
}

func TestParseTolerates(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		check   func(Export) bool
		ignored []string
	}{
		{"string channel id", `{"channel":{"id":"abc-1"},"messages":[]}`,
			func(e Export) bool { return e.Channel.ID == "abc-1" }, nil},
		{"big numeric id kept exactly", `{"channel":{"id":12345678901234567890},"messages":[]}`,
			func(e Export) bool { return e.Channel.ID == "12345678901234567890" }, nil},
		{"case-insensitive keys", `{"Channel":{"ID":5},"MESSAGES":[]}`,
			func(e Export) bool { return e.Channel.ID == "5" }, nil},
		{"bad booleans", `{"channel":{"id":1,"isMissed":"yes","isOffline":2},"messages":[]}`,
			func(e Export) bool { return !e.Channel.IsMissed && !e.Channel.IsOffline }, []string{"channel.isMissed", "channel.isOffline"}},
		{"negative and huge counts", `{"channel":{"id":1,"duration":-5,"wordsCount":1e300,"rating":"x"},"messages":[]}`,
			func(e Export) bool {
				return e.Channel.Duration == 0 && e.Channel.WordsCount == 0 && e.Channel.Rating == 0
			},
			[]string{"channel.duration", "channel.wordsCount", "channel.rating"}},
		{"times out of range", `{"beginAt":-1,"endAt":99999999999999999,"channel":{"id":1},"messages":[]}`,
			func(e Export) bool { return e.BeginAt.IsZero() && e.EndAt.IsZero() }, []string{"beginAt", "endAt"}},
		{"times in seconds and RFC 3339", `{"beginAt":1714554000,"endAt":"2024-05-01T12:00:00+03:00","channel":{"id":1},"messages":[]}`,
			func(e Export) bool {
				return e.BeginAt.Equal(utc("2024-05-01T09:00:00Z")) && e.EndAt.Equal(utc("2024-05-01T09:00:00Z")) && e.EndAt.Location() == time.UTC
			}, nil},
		{"visitor not an object", `{"channel":{"id":1},"visitor":"Ivan","messages":[]}`,
			func(e Export) bool { return e.Visitor.ID == "" }, []string{"visitor"}},
		{"paths not an array", `{"channel":{"id":1},"paths":{"url":"x"},"messages":[]}`,
			func(e Export) bool { return e.Paths == nil }, []string{"paths"}},
		{"object name", `{"channel":{"id":1},"messages":[{"type":"visitor","name":{"first":"I"},"content":"hi"}]}`,
			func(e Export) bool { return e.Messages[0].Name == "" && e.Messages[0].Content == "hi" }, []string{"messages[0].name"}},
		{"invalid utf-8", "{\"channel\":{\"id\":1},\"visitor\":{\"name\":\"I\xffvan\"},\"messages\":[]}",
			func(e Export) bool { return e.Visitor.Name == "I\uFFFDvan" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(e) {
				t.Errorf("unexpected export: %+v", e)
			}
			if diff := cmp.Diff(tt.ignored, e.Ignored); diff != "" {
				t.Errorf("Ignored (-want +got)\n%s", diff)
			}
		})
	}
}

func TestIgnoredIsBounded(t *testing.T) {
	body := `{"channel":{"id":1},"messages":[` + strings.Repeat(`null,`, 100) + `null]}`
	e, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Ignored) != MaxIgnored+1 || e.Ignored[MaxIgnored] != "…" {
		t.Errorf("Ignored has %d entries: %v", len(e.Ignored), e.Ignored)
	}
}

func TestTranscriptRules(t *testing.T) {
	base := func(channel, messages string) Export {
		t.Helper()
		e, err := Parse([]byte(`{"channel":{"id":9` + channel + `},"visitor":{"id":1,"name":"V"},"messages":[` + messages + `]}`))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	v := `{"type":"visitor","from":"visitor:x","content":"q"}`
	agent := func(id, text string) string {
		return `{"type":"agent","name":"A` + id + `","from":"agent:` + id + `","content":"` + text + `"}`
	}
	tests := []struct {
		name     string
		e        Export
		status   transcript.Status
		operator string
		authors  []transcript.AuthorType
	}{
		{"closed", base("", v+","+agent("1", "a")), transcript.StatusClosed, "1",
			[]transcript.AuthorType{transcript.AuthorClient, transcript.AuthorOperator}},
		{"missed", base(`,"isMissed":true`, v), transcript.StatusMissed, "",
			[]transcript.AuthorType{transcript.AuthorClient}},
		{"dropped is missed", base(`,"isDropped":true`, v), transcript.StatusMissed, "",
			[]transcript.AuthorType{transcript.AuthorClient}},
		{"offline beats missed", base(`,"isMissed":true,"isOffline":true`, v), transcript.StatusOffline, "",
			[]transcript.AuthorType{transcript.AuthorClient}},
		{"most active agent", base("", agent("1", "a")+","+agent("2", "b")+","+agent("2", "c")), transcript.StatusClosed, "2",
			[]transcript.AuthorType{transcript.AuthorOperator, transcript.AuthorOperator, transcript.AuthorOperator}},
		{"joined agent when none wrote", base("", `{"type":"system","from":"agent:7","content":"agent.join"},`+v), transcript.StatusClosed, "7",
			[]transcript.AuthorType{transcript.AuthorClient}},
		{"triggered agent message is a bot", base("", `{"type":"agent","from":"agent:4","content":"Hi!","triggeredBy":"Welcome"},`+v), transcript.StatusClosed, "4",
			[]transcript.AuthorType{transcript.AuthorBot, transcript.AuthorClient}},
		{"system text stays out", base("", `{"type":"system","from":"system","content":"close.visitorClose"},`+v), transcript.StatusClosed, "",
			[]transcript.AuthorType{transcript.AuthorClient}},
		{"unknown from is skipped", base("", `{"type":"bot","from":"robot:1","content":"x"},`+v), transcript.StatusClosed, "",
			[]transcript.AuthorType{transcript.AuthorClient}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := tt.e.Transcript()
			if err != nil {
				t.Fatal(err)
			}
			var authors []transcript.AuthorType
			for _, p := range tr.Parts {
				authors = append(authors, p.Author.Type)
			}
			if tr.Status != tt.status || tr.OperatorRef != tt.operator || !cmp.Equal(authors, tt.authors) {
				t.Errorf("status %q operator %q authors %v; want %q %q %v", tr.Status, tr.OperatorRef, authors, tt.status, tt.operator, tt.authors)
			}
		})
	}
}

func TestTranscriptRefusalsAndLimits(t *testing.T) {
	for _, body := range []string{
		`{"channel":{"id":1},"messages":[]}`,
		`{"channel":{"id":1},"messages":[{"type":"system","content":"agent.join"},{"type":"visitor","content":" \n "}]}`,
	} {
		e, err := Parse([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Transcript()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "messages" {
			t.Errorf("%s: err = %v, want a FieldError for messages", body, err)
		}
	}

	long := strings.Repeat("я", transcript.MaxBodyBytes) // twice the bytes
	e := Export{Channel: Channel{ID: "1"}, Messages: []Message{{Type: MessageVisitor, Content: long}}}
	tr, err := e.Transcript()
	if err != nil {
		t.Fatal(err)
	}
	if b := tr.Parts[0].Body; len(b) > transcript.MaxBodyBytes || !strings.HasSuffix(b, "\n…") {
		t.Errorf("long body not cut: %d bytes, ends %q", len(b), b[len(b)-8:])
	}

	var many []Message
	for range transcript.MaxParts + 1 {
		many = append(many, Message{Type: MessageVisitor, Content: "x"})
	}
	_, err = Export{Channel: Channel{ID: "1"}, Messages: many}.Transcript()
	var tfe *transcript.FieldError
	if !errors.As(err, &tfe) || tfe.Field != "parts" {
		t.Errorf("too many parts: err = %v", err)
	}

	// endAt before beginAt: the end falls back to the messages.
	e = Export{Channel: Channel{ID: "1"}, BeginAt: ms(2000000), EndAt: ms(1000000),
		Messages: []Message{{Type: MessageVisitor, Content: "x", SentAt: ms(3000000)}}}
	tr, err = e.Transcript()
	if err != nil {
		t.Fatal(err)
	}
	if !tr.EndedAt.Equal(ms(3000000)) {
		t.Errorf("EndedAt = %v", tr.EndedAt)
	}
}
