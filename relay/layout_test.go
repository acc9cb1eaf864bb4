package relay

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The layout docs/architecture.md describes, checked: the root is wiring
// and flows (small, no JetStream), the partner packages are leaves, the
// relay links no GUI toolkit, the agent never imports the relay, and the
// parts' test hooks stay in tests.

// rootFiles parses the root package's non-test files.
func rootFiles(t *testing.T) (*token.FileSet, map[string]*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*ast.File{}
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files[n] = f
	}
	return fset, files
}

func TestRootIsWiring(t *testing.T) {
	fset, files := rootFiles(t)
	total, methods := 0, 0
	for name, f := range files {
		lines := fset.File(f.Pos()).LineCount()
		total += lines
		if lines > 700 {
			t.Errorf("%s: %d lines; no file of the root is over 700", name, lines)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/nats-io/") {
				t.Errorf("%s imports %s: the root speaks to the store in verbs", name, p)
			}
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv == nil {
				continue
			}
			typ := fd.Recv.List[0].Type
			if st, ok := typ.(*ast.StarExpr); ok {
				typ = st.X
			}
			if id, ok := typ.(*ast.Ident); ok && id.Name == "Server" {
				methods++
			}
		}
	}
	if total >= 3500 {
		t.Errorf("the root has %d lines; want under 3 500", total)
	}
	if methods > 40 {
		t.Errorf("Server has %d methods; want at most 40", methods)
	}
	t.Logf("root: %d files, %d lines, Server with %d methods", len(files), total, methods)
}

// goList runs go list in the module.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs go list")
	}
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command")
		}
	}
	cmd := exec.Command(gobin, append([]string{"list"}, args...)...)
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

const module = "github.com/pult/pult"

func TestImportsPointOneWay(t *testing.T) {
	for _, p := range goList(t, "-deps", "./cmd/pult-relay") {
		if strings.HasPrefix(p, "fyne.io/") {
			t.Errorf("pult-relay links %s: the relay links no GUI toolkit", p)
		}
	}
	for _, p := range goList(t, "-deps", "./agent/...") {
		if strings.HasPrefix(p, module+"/relay") {
			t.Errorf("the agent imports %s: it never imports the relay", p)
		}
	}
	// The partner packages are leaves: none reaches the root or the parts
	// with state.
	banned := []string{module + "/relay", module + "/relay/hub", module + "/relay/store",
		module + "/relay/outbox", module + "/relay/board"}
	partners := []string{"partner", "retailcrm", "qolio", "calltouch", "uis", "smartsupp", "transcript", "untrusted"}
	for _, p := range partners {
		for _, line := range goList(t, "-deps", "./relay/"+p) {
			for _, b := range banned {
				if line == b {
					t.Errorf("relay/%s depends on %s: partner packages are leaves", p, b)
				}
			}
		}
	}
}

// The parts' test hooks (their fortest.go files: Go compiles an _test.go
// file only for its own package's tests, and the relay's tests need
// these) are called by tests only.
func TestTestHooksStayInTests(t *testing.T) {
	fset := token.NewFileSet()
	hooks := map[string]string{} // method name → its fortest.go
	var sources []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != ".." && (strings.HasPrefix(n, ".") || n == "testdata" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		if d.Name() == "fortest.go" {
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			for _, decl := range f.Decls {
				if fd, ok := decl.(*ast.FuncDecl); ok && fd.Name.IsExported() {
					hooks[fd.Name.Name] = path
				}
			}
			return nil
		}
		sources = append(sources, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(hooks) == 0 {
		t.Fatal("no fortest.go found")
	}
	for _, path := range sources {
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if where, ok := hooks[sel.Sel.Name]; ok {
					t.Errorf("%s: %s is a test hook (%s); production code does not call it", fset.Position(sel.Pos()), sel.Sel.Name, where)
				}
			}
			return true
		})
	}
}
