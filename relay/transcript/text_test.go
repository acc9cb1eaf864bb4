package transcript

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
)

var msk = time.FixedZone("MSK", 3*3600)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseTextFixtures(t *testing.T) {
	utc := func(s string) time.Time {
		at, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return at.UTC()
	}
	op := func(name, body string) Part {
		return Part{Author: Author{Type: AuthorOperator, ID: "op-7", Name: name}, Body: body}
	}
	cl := func(name, body string) Part {
		return Part{Author: Author{Type: AuthorClient, Name: name}, Body: body}
	}
	at := func(p Part, s string) Part { p.At = utc(s); return p }
	number := func(ps ...Part) []Part {
		for i := range ps {
			ps[i].ID = string(rune('1' + i))
		}
		return ps
	}
	tests := []struct {
		name string
		file string
		opts TextOptions
		want Transcript
	}{
		{
			name: "plain",
			file: "chat_plain.txt",
			opts: TextOptions{CommunicationID: "paste-1", OperatorRef: "op-7", Operators: []string{" анна "}},
			want: Transcript{
				CommunicationID: "paste-1", Source: SourceOperator, Status: StatusClosed, OperatorRef: "op-7",
				Client: Client{Name: "Иван Петров"},
				Parts: number(
					cl("Иван Петров", "Здравствуйте! Заказ 12345 не пришёл.\nДолжен был быть вчера."),
					op("Анна", "Добрый день, Иван!\nСейчас проверю.\n\nСтатус заказа: передан в доставку.\n\nКурьер будет сегодня до 18:00."),
					cl("Иван Петров", "Спасибо. Уточню адрес:\nАдрес: Москва, ул. Тверская, 1\nТелефон: +7 912 123-45-67"),
					op("анна", "Записала, передам курьеру."),
					op("Анна", "Хорошего дня!"),
				),
			},
		},
		{
			name: "stamped with date",
			file: "chat_stamped.txt",
			opts: TextOptions{
				CommunicationID: "paste-2", OperatorRef: "op-7", Operators: []string{"Anna", "support  bot"},
				Date: time.Date(2024, 5, 1, 0, 0, 0, 0, msk), Location: msk,
			},
			want: Transcript{
				CommunicationID: "paste-2", Source: SourceOperator, Status: StatusClosed, OperatorRef: "op-7",
				Client:    Client{Name: "Client"},
				StartedAt: utc("2024-05-01T23:58:00+03:00"), EndedAt: utc("2024-05-02T09:17:00+03:00"),
				Parts: number(
					at(cl("Client", "Are you still there?"), "2024-05-01T23:58:00+03:00"),
					at(op("Support Bot", "Yes — Anna here."), "2024-05-01T23:59:30+03:00"),
					at(cl("Client", "Great, my parcel is late."), "2024-05-02T00:01:00+03:00"),
					at(op("Anna", "Good morning! It ships today."), "2024-05-02T09:15:00+03:00"),
					at(cl("Client", "Thanks."), "2024-05-02T09:16:00+03:00"),
					at(op("Anna", "You're welcome."), "2024-05-02T09:17:00+03:00"),
				),
			},
		},
		{
			name: "stamped without date",
			file: "chat_stamped.txt",
			opts: TextOptions{CommunicationID: "paste-3", OperatorRef: "op-7", Operators: []string{"Anna", "Support Bot"}},
			want: Transcript{
				CommunicationID: "paste-3", Source: SourceOperator, Status: StatusClosed, OperatorRef: "op-7",
				Client:    Client{Name: "Client"},
				StartedAt: utc("2024-05-02T09:15:00Z"), EndedAt: utc("2024-05-02T09:17:00Z"),
				Parts: number(
					cl("Client", "Are you still there?"),
					op("Support Bot", "Yes — Anna here."),
					cl("Client", "Great, my parcel is late."),
					at(op("Anna", "Good morning! It ships today."), "2024-05-02T09:15:00Z"),
					at(cl("Client", "Thanks."), "2024-05-02T09:16:00Z"),
					at(op("Anna", "You're welcome."), "2024-05-02T09:17:00Z"),
				),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseText(strings.NewReader(string(fixture(t, tt.file))), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestParseTextLines(t *testing.T) {
	opts := TextOptions{CommunicationID: "c", OperatorRef: "7", Operators: []string{"Op"}}
	type part struct {
		typ  AuthorType
		name string
		body string
	}
	tests := []struct {
		name   string
		text   string
		client string
		want   []part
	}{
		{"crlf and cr", "Op: a\r\nb\rClient: c\r\n", "",
			[]part{{AuthorOperator, "Op", "a\nb"}, {AuthorClient, "Client", "c"}}},
		{"bom", "\uFEFFOp: hi", "", []part{{AuthorOperator, "Op", "hi"}}},
		{"unknown name without space after colon is text", "Op: see http://x.y/z\nGuest:no-space", "",
			[]part{{AuthorOperator, "Op", "see http://x.y/z\nGuest:no-space"}}},
		{"known names without space", "Op:hi\nGuest: a\nGuest:b\nOp:c", "",
			[]part{{AuthorOperator, "Op", "hi"}, {AuthorClient, "Guest", "a"}, {AuthorClient, "Guest", "b"}, {AuthorOperator, "Op", "c"}}},
		{"long prefix is text", "Op: Here it is\nOur address for the delivery: 5 Main St", "",
			[]part{{AuthorOperator, "Op", "Here it is\nOur address for the delivery: 5 Main St"}}},
		{"bullet is text", "Op: options\n- Price: 500\n* Note: soon", "",
			[]part{{AuthorOperator, "Op", "options\n- Price: 500\n* Note: soon"}}},
		{"question is text", "Op: hi\nWhy? Because: reasons", "",
			[]part{{AuthorOperator, "Op", "hi\nWhy? Because: reasons"}}},
		{"first other speaker is the client", "Op: hi\nGuest: hello\nOther: hey", "",
			[]part{{AuthorOperator, "Op", "hi"}, {AuthorClient, "Guest", "hello\nOther: hey"}}},
		{"given client", "Op: Hours: 9 to 6\nIvan: ok", "ivan",
			[]part{{AuthorOperator, "Op", "Hours: 9 to 6"}, {AuthorClient, "Ivan", "ok"}}},
		{"ё and case", "ОПЕРАТОР СЁМА: привет\nКлиент: ок", "",
			[]part{{AuthorOperator, "ОПЕРАТОР СЁМА", "привет"}, {AuthorClient, "Клиент", "ок"}}},
		{"empty message dropped", "Op:\n\nClient: x\nOp:   \nOp: y", "",
			[]part{{AuthorClient, "Client", "x"}, {AuthorOperator, "Op", "y"}}},
		{"body on the next lines", "Op:\n  first\n\n\n  second  \n\n", "",
			[]part{{AuthorOperator, "Op", "first\n\n  second"}}},
		{"stamp without speaker is text", "Op: a\n[12:00] (file)", "",
			[]part{{AuthorOperator, "Op", "a\n[12:00] (file)"}}},
		{"control characters dropped", "Op: a\x00b\x07c\td", "",
			[]part{{AuthorOperator, "Op", "ab" + "c\td"}}},
		{"invalid utf-8 replaced", "Op: a\xffb", "", []part{{AuthorOperator, "Op", "a\uFFFDb"}}},
		{"leading blank lines", "\n \n\t\nOp: x", "", []part{{AuthorOperator, "Op", "x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := opts
			o.Operators = []string{"Op", "оператор сема"}
			o.Client = tt.client
			got, err := ParseText(strings.NewReader(tt.text), o)
			if err != nil {
				t.Fatal(err)
			}
			var parts []part
			for _, p := range got.Parts {
				parts = append(parts, part{p.Author.Type, p.Author.Name, p.Body})
			}
			if diff := cmp.Diff(tt.want, parts, cmp.AllowUnexported(part{})); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestParseTextStamps(t *testing.T) {
	day := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		line string
		want string // RFC 3339, "" no time, "text" not a speaker line
	}{
		{"[12:03] Op: x", "2024-05-01T12:03:00Z"},
		{"[9:03] Op: x", "2024-05-01T09:03:00Z"},
		{"12:03:04 Op: x", "2024-05-01T12:03:04Z"},
		{"(12:03) Op: x", "2024-05-01T12:03:00Z"},
		{"2024-05-03 12:03:04 Op: x", "2024-05-03T12:03:04Z"},
		{"[2024-05-03 12:03] Op: x", "2024-05-03T12:03:00Z"},
		{"2024-05-03T12:03:04 Op: x", "2024-05-03T12:03:04Z"},
		{"03.05.2024 12:03 Op: x", "2024-05-03T12:03:00Z"},
		{"03.05.2024, 12:03 Op: x", "2024-05-03T12:03:00Z"},
		{"12:03 — Op: x", "2024-05-01T12:03:00Z"},
		{"Op: x", ""},
		{"[24:00] Op: x", "text"},
		{"[12:60] Op: x", "text"},
		{"[12:03 Op: x", "text"},
		{"12:03] Op: x", "text"},
		{"12:034 Op: x", "text"},
		{"31.02.2024 12:00 Op: x", "text"},
		{"1969-12-31 12:00 Op: x", "text"},
		{"12:03Op: x", "text"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := ParseText(strings.NewReader("Op: start\n"+tt.line), TextOptions{CommunicationID: "c", Operators: []string{"Op"}, Date: day})
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "text" {
				if len(got.Parts) != 1 || !strings.HasSuffix(got.Parts[0].Body, tt.line) {
					t.Fatalf("want the line as text, got %+v", got.Parts)
				}
				return
			}
			if len(got.Parts) != 2 {
				t.Fatalf("want 2 parts, got %+v", got.Parts)
			}
			at := got.Parts[1].At
			if s := at.Format(time.RFC3339); tt.want == "" && !at.IsZero() || tt.want != "" && s != tt.want {
				t.Errorf("at = %v, want %q", at, tt.want)
			}
			if got.Parts[1].Body != "x" {
				t.Errorf("body = %q", got.Parts[1].Body)
			}
		})
	}
}

func TestParseTextRefusals(t *testing.T) {
	ok := TextOptions{CommunicationID: "c", Operators: []string{"Op"}}
	tests := []struct {
		name   string
		text   string
		opts   TextOptions
		field  string
		reason string
	}{
		{"no operators", "Op: x", TextOptions{CommunicationID: "c", Operators: []string{" ", ""}}, "operators", "required"},
		{"empty", "", ok, "text", "no messages"},
		{"blank", "\n  \n", ok, "text", "no messages"},
		{"only empty messages", "Op:\nOp:  ", ok, "text", "no messages"},
		{"no speaker first", string(fixture(t, "chat_no_speaker.txt")), ok, "text", "line 1"},
		{"unknown speaker when client given", "Bob: hi\nOp: x", TextOptions{CommunicationID: "c", Operators: []string{"Op"}, Client: "Ann"}, "text", `"Bob" is neither`},
		{"no operator message", "Anna: hi\nthere", ok, "operators", `speakers found: "Anna"`},
		{"no communication id", "Op: x", TextOptions{Operators: []string{"Op"}}, "communication_id", "required"},
		{"body too long", "Op: x\nOp: " + strings.Repeat("a", MaxBodyBytes+1), ok, "parts[1].body", "line 2"},
		{"too many parts", strings.Repeat("Op: x\n", MaxParts+1), ok, "parts", "at most"},
		{"too large", "Op: " + strings.Repeat("a", MaxText), ok, "text", "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseText(strings.NewReader(tt.text), tt.opts)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *FieldError", err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Reason, tt.reason) {
				t.Errorf("err = %v, want field %q with %q", err, tt.field, tt.reason)
			}
		})
	}
	if _, err := ParseText(strings.NewReader("Op: "+strings.Repeat("a", MaxText)), ok); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v does not wrap ErrTooLarge", err)
	}
	if _, err := ParseText(strings.NewReader("Op: "+strings.Repeat("a", MaxText-4)), ok); !errors.Is(err, ErrTooLarge) {
		t.Errorf("exactly MaxText: %v, want the body refused as too large", err)
	}
	if _, err := ParseText(nil, ok); err == nil {
		t.Error("nil reader accepted")
	}
	readErr := errors.New("disk on fire")
	if _, err := ParseText(iotest.ErrReader(readErr), ok); !errors.Is(err, readErr) {
		t.Errorf("read error = %v", err)
	}
}
