package sim

import (
	"fmt"

	"github.com/pult/pult/relay/retailcrm"
)

// DemoManager is a CRM user of the demo data set and the status it starts
// with.
type DemoManager struct {
	Manager retailcrm.Manager
	Status  string
}

// DemoClient is a client of the demo shop.
type DemoClient struct {
	Phone    string // as the shop wrote it down
	Site     string // shop code
	Customer retailcrm.Customer
	Manager  *retailcrm.Manager // responsible manager; nil: none
}

// Demo shops and the company numbers that ring them.
const (
	DemoSiteMain   = "shop1"
	DemoSiteOutlet = "shop2"
	DemoLineMain   = "+74999999999"
	DemoLineOutlet = "+74998888888"
)

// DemoManagers are the demo shop's CRM users: three free managers with
// extensions 100, 101 and 102, one with extension 103 who is at dinner (the
// CRM does not return her), and one without an extension (never returned).
func DemoManagers() []DemoManager {
	return []DemoManager{
		{retailcrm.Manager{ID: "1", FirstName: "Анна", LastName: "Смирнова", Patronymic: "Игоревна", Email: "a.smirnova@demo-shop.ru", Code: "100"}, retailcrm.StatusFree},
		{retailcrm.Manager{ID: "2", FirstName: "Дмитрий", LastName: "Волков", Patronymic: "Сергеевич", Email: "d.volkov@demo-shop.ru", Code: "101"}, retailcrm.StatusFree},
		{retailcrm.Manager{ID: "3", FirstName: "Екатерина", LastName: "Морозова", Patronymic: "Андреевна", Email: "e.morozova@demo-shop.ru", Code: "102"}, retailcrm.StatusFree},
		{retailcrm.Manager{ID: "4", FirstName: "Павел", LastName: "Соколов", Patronymic: "Николаевич", Email: "p.sokolov@demo-shop.ru", Code: "103"}, retailcrm.StatusDinner},
		{retailcrm.Manager{ID: "5", FirstName: "Ирина", LastName: "Лебедева", Patronymic: "Олеговна", Email: "i.lebedeva@demo-shop.ru"}, retailcrm.StatusFree},
	}
}

// DemoClients are fifteen clients of the demo shop. Most have a responsible
// manager; some do not, and some managers are not free or have no extension,
// so every branch of the call card can be shown.
func DemoClients() []DemoClient {
	ms := DemoManagers()
	m := func(i int) *retailcrm.Manager { mc := ms[i].Manager; return &mc }
	cu := func(id, last, first, patronymic, email string, phones ...string) retailcrm.Customer {
		return retailcrm.Customer{ID: id, FirstName: first, LastName: last, Patronymic: patronymic, Email: email, Phones: phones}
	}
	return []DemoClient{
		{"+7 (912) 123-45-67", DemoSiteMain, cu("1001", "Кузнецова", "Ольга", "Петровна", "olga.kuznetsova@example.ru", "+7 (912) 123-45-67"), m(0)},
		{"8 916 234-56-78", DemoSiteMain, cu("1002", "Попов", "Алексей", "Викторович", "a.popov@example.ru", "8 916 234-56-78", "+7 495 765-43-21"), m(0)},
		{"+7 903 345-67-89", DemoSiteMain, cu("1003", "Васильева", "Мария", "Александровна", "maria.v@example.ru", "+7 903 345-67-89"), m(1)},
		{"+7 (926) 456-78-90", DemoSiteOutlet, cu("1004", "Петров", "Сергей", "Иванович", "petrov.s@example.ru", "+7 (926) 456-78-90"), m(1)},
		{"89857654321", DemoSiteMain, cu("1005", "Новикова", "Татьяна", "Юрьевна", "t.novikova@example.ru", "89857654321"), m(2)},
		{"+7 921 567-89-01", DemoSiteOutlet, cu("1006", "Федоров", "Михаил", "Дмитриевич", "m.fedorov@example.ru", "+7 921 567-89-01"), m(2)},
		{"+7 (812) 312-45-67", DemoSiteOutlet, cu("1007", "Михайлова", "Елена", "Сергеевна", "e.mikhailova@example.ru", "+7 (812) 312-45-67"), m(2)},
		{"+7 977 678-90-12", DemoSiteMain, cu("1008", "Козлов", "Андрей", "Павлович", "kozlov.a@example.ru", "+7 977 678-90-12"), m(3)},
		{"+7 (999) 789-01-23", DemoSiteMain, cu("1009", "Егорова", "Наталья", "Владимировна", "n.egorova@example.ru", "+7 (999) 789-01-23"), m(3)},
		{"+7 915 890-12-34", DemoSiteMain, cu("1010", "Орлов", "Игорь", "", "igor.orlov@example.ru", "+7 915 890-12-34"), m(4)},
		{"+7 (495) 901-23-45", DemoSiteMain, cu("1011", "Соловьёв", "Борис", "Евгеньевич", "b.soloviev@example.ru", "+7 (495) 901-23-45"), nil},
		{"+7 905 012-34-56", DemoSiteOutlet, cu("1012", "Николаева", "Светлана", "Геннадьевна", "", "+7 905 012-34-56"), nil},
		{"+7 (917) 135-79-24", DemoSiteMain, cu("1013", "Захаров", "Виктор", "Алексеевич", "v.zakharov@example.ru", "+7 (917) 135-79-24"), nil},
		{"+7 964 246-80-13", DemoSiteOutlet, cu("1014", "Белова", "Ксения", "", "ksenia.belova@example.ru", "+7 964 246-80-13"), m(0)},
		{"+7 (981) 975-31-86", DemoSiteOutlet, cu("1015", "Григорьев", "Артём", "Романович", "a.grigoriev@example.ru", "+7 (981) 975-31-86"), m(1)},
	}
}

// NewDemoCRM is a CRM simulator loaded with the demo data set: the demo
// clients and the demo managers' statuses.
func NewDemoCRM(apiKey string) (*CRM, error) {
	c := NewCRM(apiKey)
	for _, dm := range DemoManagers() {
		if err := c.SetUserStatus(dm.Manager.ID, dm.Status); err != nil {
			return nil, err
		}
	}
	for _, dc := range DemoClients() {
		if err := c.AddClient(dc.Phone, dc.Customer, dc.Manager); err != nil {
			return nil, fmt.Errorf("sim: demo client %s: %w", dc.Customer.ID, err)
		}
	}
	return c, nil
}
