package uis

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/<event>.json from the templates and sampleValues")

var events = []string{EventIncomingCallStarted, EventOutgoingCallStarted, EventConversationStarted, EventCallFinished}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// template is UIS's body template for event, verbatim from UIS's
// instructions (testdata/template_<event>.txt).
func template(t testing.TB, event string) string {
	return string(fixture(t, "template_"+event+".txt"))
}

var placeholderRE = regexp.MustCompile(`\{\{(\w+)\}\}`)

// render fills a template the way UIS does: each {{name}} becomes
// enc(values[name]) (nil when the call has no such value).
func render(tmpl string, values map[string]any, enc func(any) string) string {
	return placeholderRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		return enc(values[placeholderRE.FindStringSubmatch(m)[1]])
	})
}

// asJSON is UIS's substitution as its templates imply (values unquoted in
// the template): a JSON value.
func asJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// asString substitutes every value as a JSON string, lists joined by
// commas, as a template with quoted placeholders and plain-text
// substitution would give.
func asString(v any) string {
	switch v := v.(type) {
	case nil:
		return `""`
	case []any:
		var parts []string
		for _, x := range v {
			parts = append(parts, fmt.Sprint(x))
		}
		return asJSON(strings.Join(parts, ","))
	}
	return asJSON(fmt.Sprint(v))
}

// asText substitutes values as bare text, no quotes at all: the body is
// then not JSON.
func asText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case []any:
		return asJSON(v)
	}
	return fmt.Sprint(v)
}

// sampleValues are plausible values for each event of one incoming call
// (3061237823) answered by employee 12345, and one outgoing call. UIS's
// instructions show only the templates, no values.
func sampleValues(event string) map[string]any {
	v := map[string]any{
		"app_id":                 12345,
		"call_session_id":        3061237823,
		"call_source":            "va",
		"called_phone_number":    "74951505050",
		"calling_phone_number":   "79121234567",
		"communication_id":       781204512,
		"communication_type":     "call",
		"contact_full_name":      "Иванов Иван Иванович",
		"contact_group_ids":      []any{101, 102},
		"contact_id":             5550011,
		"contact_phone_number":   "79121234567",
		"cpn_region_id":          77,
		"cpn_region_name":        "Москва",
		"direction":              "in",
		"external_id":            nil,
		"notification_mnemonic":  event,
		"notification_name":      "pult: " + event,
		"notification_time":      "2024-05-01 12:00:01",
		"notification_timestamp": 1714554001,
		"scenario_id":            40001,
		"scenario_name":          "Основной сценарий",
		"start_time":             "2024-05-01 12:00:00",
		"tp_project":             nil,
		"virtual_phone_number":   "74951505050",
		"visitor_country":        "RU",
	}
	employee := map[string]any{
		"employee_full_name":     "Петрова Анна",
		"employee_group_ids":     []any{7},
		"employee_id":            12345,
		"employee_phone_number":  "79031112233",
		"extension_phone_number": "101",
	}
	switch event {
	case EventOutgoingCallStarted:
		for k, x := range employee {
			v[k] = x
		}
		v["call_session_id"] = 3061240001
		v["communication_id"] = 781204600
		v["direction"] = "out"
		v["calling_phone_number"] = "74951505050"
		v["called_phone_number"] = "79161234567"
		v["contact_phone_number"] = "79161234567"
		v["contact_full_name"] = nil
		v["notification_time"] = "2024-05-01 12:10:00"
		v["notification_timestamp"] = 1714554600
		v["start_time"] = "2024-05-01 12:10:00"
	case EventConversationStarted:
		for k, x := range employee {
			v[k] = x
		}
		v["answer_time"] = "2024-05-01 12:00:12"
		v["leg_ids"] = []any{90001, 90002}
		v["notification_time"] = "2024-05-01 12:00:12"
		v["notification_timestamp"] = 1714554012
	case EventCallFinished:
		for k, x := range employee {
			v[k] = x
		}
		for k, x := range map[string]any{
			"clean_talk_time_duration":          200,
			"connection_time":                   2,
			"employee_full_names":               []any{"Петрова Анна", "Смирнов Олег"},
			"employee_ids":                      []any{12345, 12346},
			"finish_reason":                     "subscriber_disconnects",
			"finish_time":                       "2024-05-01 12:03:40",
			"first_answered_employee_full_name": "Петрова Анна",
			"first_answered_employee_id":        12345,
			"first_talked_employee_full_name":   "Петрова Анна",
			"first_talked_employee_id":          12345,
			"group_ids":                         []any{7},
			"is_lost":                           false,
			"is_transfer":                       false,
			"last_answered_employee_full_name":  "Петрова Анна",
			"last_answered_employee_id":         12345,
			"last_scenario_operation_id":        3,
			"last_scenario_operation_name":      "Звонок сотруднику",
			"last_talked_employee_full_name":    "Петрова Анна",
			"last_talked_employee_id":           12345,
			"lost_reason":                       nil,
			"noanswered_employee_full_names":    []any{"Смирнов Олег"},
			"notification_time":                 "2024-05-01 12:03:41",
			"notification_timestamp":            1714554221,
			"operator_rating":                   nil,
			"postprocess_time_duration":         30,
			"record_file_links":                 []any{"https://app.uiscom.ru/system/media/talk/3061237823/0b7e4ac2f1d9/"},
			"scenario_operation_ids":            []any{1, 2, 3},
			"scenario_operation_names":          []any{"Приветствие", "Меню", "Звонок сотруднику"},
			"tag_ids":                           []any{11, 12},
			"tag_names":                         []any{"Доставка", "VIP"},
			"talk_time_duration":                208,
			"talked_employee_full_names":        []any{"Петрова Анна"},
			"toc_group_ids":                     nil,
			"total_time_duration":               220,
			"total_wait_time_duration":          12,
			"wait_time_duration":                10,
		} {
			v[k] = x
		}
	}
	return v
}

// TestFixturesAreRenderedTemplates keeps testdata/<event>.json equal to
// UIS's template filled with sampleValues; -update rewrites them.
func TestFixturesAreRenderedTemplates(t *testing.T) {
	for _, ev := range events {
		want := render(template(t, ev), sampleValues(ev), asJSON)
		name := ev + ".json"
		if *update {
			if err := os.WriteFile(filepath.Join("testdata", name), []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := string(fixture(t, name)); got != want {
			t.Errorf("testdata/%s is not the rendered template; run go test -run TestFixtures -update", name)
		}
		if !json.Valid([]byte(want)) {
			t.Errorf("rendered %s is not JSON", ev)
		}
		if strings.Contains(want, "{{") {
			t.Errorf("rendered %s keeps a placeholder", ev)
		}
	}
}
