package transcript

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func validTranscript() Transcript {
	at := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	return Transcript{
		CommunicationID: "smartsupp-1", Source: SourceSmartsupp, Title: "Chat", Status: StatusClosed, OperatorRef: "3",
		Client:    Client{ID: "27671", Name: "Dusan", Email: "d@example.com", Phone: "+420 123"},
		StartedAt: at, EndedAt: at.Add(time.Minute),
		Parts: []Part{
			{ID: "0", Author: Author{Type: AuthorClient, ID: "27671", Name: "Dusan"}, Body: "Hello", At: at},
			{ID: "1", Author: Author{Type: AuthorBot, Name: "Trigger"}, Body: "Hi!\n\tHow can we help?", At: at},
			{ID: "2", Author: Author{Type: AuthorOperator, ID: "3"}, Body: "Yes?"},
		},
	}
}

func TestValidate(t *testing.T) {
	if err := validTranscript().Validate(); err != nil {
		t.Fatalf("valid transcript refused: %v", err)
	}
	many := make([]Part, MaxParts+1)
	for i := range many {
		many[i] = Part{ID: string(rune(0x4e00 + i)), Author: Author{Type: AuthorClient}, Body: "x"}
	}
	big := make([]Part, MaxTotalBytes/MaxBodyBytes+1)
	for i := range big {
		big[i] = Part{ID: string(rune('a'+i%26)) + strings.Repeat("z", i/26), Author: Author{Type: AuthorClient}, Body: strings.Repeat("x", MaxBodyBytes)}
	}
	tests := []struct {
		name   string
		change func(*Transcript)
		field  string
	}{
		{"no id", func(t *Transcript) { t.CommunicationID = "" }, "communication_id"},
		{"id with spaces around", func(t *Transcript) { t.CommunicationID = " x" }, "communication_id"},
		{"id with newline", func(t *Transcript) { t.CommunicationID = "a\nb" }, "communication_id"},
		{"id too long", func(t *Transcript) { t.CommunicationID = strings.Repeat("é", MaxIDLen+1) }, "communication_id"},
		{"id bad utf-8", func(t *Transcript) { t.CommunicationID = "a\xff" }, "communication_id"},
		{"no source", func(t *Transcript) { t.Source = "" }, "source"},
		{"source upper case", func(t *Transcript) { t.Source = "Smartsupp" }, "source"},
		{"source too long", func(t *Transcript) { t.Source = strings.Repeat("a", MaxSourceLen+1) }, "source"},
		{"title control", func(t *Transcript) { t.Title = "a\x00" }, "title"},
		{"no status", func(t *Transcript) { t.Status = "" }, "status"},
		{"unknown status", func(t *Transcript) { t.Status = "open" }, "status"},
		{"operator ref tab", func(t *Transcript) { t.OperatorRef = "a\tb" }, "operator_ref"},
		{"client email long", func(t *Transcript) { t.Client.Email = strings.Repeat("a", MaxEmailLen+1) }, "client.email"},
		{"client phone long", func(t *Transcript) { t.Client.Phone = strings.Repeat("1", MaxPhoneLen+1) }, "client.phone"},
		{"client name control", func(t *Transcript) { t.Client.Name = "a\u0085" }, "client.name"},
		{"ended before started", func(t *Transcript) { t.EndedAt = t.StartedAt.Add(-time.Second) }, "ended_at"},
		{"started before 1970", func(t *Transcript) { t.StartedAt = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) }, "started_at"},
		{"ended after 9999", func(t *Transcript) { t.EndedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "ended_at"},
		{"no parts", func(t *Transcript) { t.Parts = nil }, "parts"},
		{"too many parts", func(t *Transcript) { t.Parts = many }, "parts"},
		{"too much text", func(t *Transcript) { t.Parts = big }, "parts"},
		{"part without id", func(t *Transcript) { t.Parts[1].ID = "" }, "parts[1].id"},
		{"duplicate part id", func(t *Transcript) { t.Parts[2].ID = "0" }, "parts[2].id"},
		{"no author type", func(t *Transcript) { t.Parts[0].Author.Type = "" }, "parts[0].author.type"},
		{"unknown author type", func(t *Transcript) { t.Parts[0].Author.Type = "agent" }, "parts[0].author.type"},
		{"author id control", func(t *Transcript) { t.Parts[0].Author.ID = "\x1b" }, "parts[0].author.id"},
		{"author name long", func(t *Transcript) { t.Parts[0].Author.Name = strings.Repeat("n", MaxNameLen+1) }, "parts[0].author.name"},
		{"blank body", func(t *Transcript) { t.Parts[2].Body = " \n\t" }, "parts[2].body"},
		{"body too long", func(t *Transcript) { t.Parts[2].Body = strings.Repeat("a", MaxBodyBytes+1) }, "parts[2].body"},
		{"body bad utf-8", func(t *Transcript) { t.Parts[2].Body = "a\xc3" }, "parts[2].body"},
		{"body carriage return", func(t *Transcript) { t.Parts[2].Body = "a\r\nb" }, "parts[2].body"},
		{"part time before 1970", func(t *Transcript) { t.Parts[1].At = time.Unix(-1, 0) }, "parts[1].at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := validTranscript()
			tt.change(&tr)
			err := tr.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *FieldError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("field = %q (%v), want %q", fe.Field, err, tt.field)
			}
			if !strings.HasPrefix(err.Error(), "transcript: "+tt.field+": ") {
				t.Errorf("message %q does not name the field", err)
			}
		})
	}
}

func TestValidateLimitsAreInclusive(t *testing.T) {
	tr := validTranscript()
	tr.CommunicationID = strings.Repeat("é", MaxIDLen)
	tr.Parts[0].Body = strings.Repeat("a", MaxBodyBytes)
	if err := tr.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestTranscriptJSON(t *testing.T) {
	tr := validTranscript()
	tr.Parts[2].At = time.Time{}
	tr.Client = Client{}
	b, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"communication_id":"smartsupp-1"`, `"status":"closed"`, `"type":"bot"`, `"at":"2024-05-01T09:00:00Z"`} {
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %s", s, want)
		}
	}
	for _, unwanted := range []string{`"client":`, `"at":"0001`} {
		if strings.Contains(s, unwanted) {
			t.Errorf("%s has %s", s, unwanted)
		}
	}
	var back Transcript
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tr, back); diff != "" {
		t.Errorf("round trip (-want +got)\n%s", diff)
	}
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{" \n\t\r\n ", ""},
		{"hello", "hello"},
		{"  hello  ", "hello"},
		{"a\r\nb\rc\n", "a\nb\nc"},
		{"a\n\n\n\nb", "a\n\nb"},
		{"a  \n \t \n  b", "a\n\n  b"},
		{"\n\na\n\n", "a"},
		{"a\x00b\x1bc\u0085d\x7f", "abcd"},
		{"tab\tinside", "tab\tinside"},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{"line\u00a0\nnext", "line\nnext"},
	}
	for _, tt := range tests {
		if got := Clean(tt.in); got != tt.want {
			t.Errorf("Clean(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
