package storytest_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/storyflow/storyflow/storytest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with the file testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestPassing(t *testing.T) {
	r := storytest.NewRunner(storytest.Options{})
	fr := r.RunFile(context.Background(), "testdata/shop.test.yaml")
	var out bytes.Buffer
	fr.Write(&out, true)
	if fr.Failed() {
		t.Fatalf("shop.test.yaml failed:\n%s", out.String())
	}
	golden(t, "shop.golden", out.Bytes())
}

// TestFailures: every kind of failure, with its message (golden).
func TestFailures(t *testing.T) {
	r := storytest.NewRunner(storytest.Options{})
	fr := r.RunFile(context.Background(), "testdata/fail.test.yaml")
	if !fr.Failed() {
		t.Fatal("fail.test.yaml passed")
	}
	for _, c := range fr.Cases {
		if c.Passed() {
			t.Errorf("case %q passed", c.Name)
		}
	}
	var out bytes.Buffer
	fr.Write(&out, false)
	golden(t, "fail.golden", out.Bytes())
}

// TestCoverage: the coverage of shop.yaml by shop.test.yaml (golden), and
// that more tests cover more.
func TestCoverage(t *testing.T) {
	r := storytest.NewRunner(storytest.Options{})
	if fr := r.RunFile(context.Background(), "testdata/shop.test.yaml"); fr.Failed() {
		t.Fatal("shop.test.yaml failed")
	}
	cov := r.Coverage()
	if len(cov) != 1 {
		t.Fatalf("got coverage of %d stories, want 1", len(cov))
	}
	ran, nodes, taken, branches := cov[0].Counts()
	if ran != 4 || nodes != 6 || taken != 3 || branches != 6 {
		t.Errorf("got nodes %d/%d, branches %d/%d; want 4/6, 3/6", ran, nodes, taken, branches)
	}
	var out bytes.Buffer
	cov[0].Report(&out)
	golden(t, "shop-coverage.golden", out.Bytes())

	r.RunFile(context.Background(), "testdata/more.test.yaml")
	ran, _, taken, _ = cov[0].Counts()
	if ran != 6 || taken != 6 {
		t.Errorf("after more.test.yaml: nodes %d/6, branches %d/6; want all", ran, taken)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ name, src, want string }{
		{"unknown field", "tests:\n  - name: x\n    stepz: []\n", "x.test.yaml:3:5: test: field stepz not recognised (did you mean steps?)"},
		{"two inputs", "tests:\n  - name: x\n    steps:\n      - {text: a, postback: b}\n", "x.test.yaml:4:9: step: want one of text, postback or goto, not 2"},
		{"no input", "tests:\n  - name: x\n    steps:\n      - text: a\n      - expect: {node: a}\n", "x.test.yaml:5:9: step needs one of text, postback or goto (only the first step may check the start)"},
		{"response type", "tests:\n  - name: x\n    steps:\n      - expect: {responses: [{type: txt}]}\n", `x.test.yaml:4:37: unknown response type "txt" (did you mean text?)`},
		{"bad pattern", "tests:\n  - name: x\n    steps:\n      - expect: {responses: [{pattern: \"(\"}]}\n", "x.test.yaml:4:40: pattern: error parsing regexp: missing closing ): `(`"},
		{"status", "tests:\n  - name: x\n    steps:\n      - expect: {status: done}\n", "x.test.yaml:4:26: status must be active, completed, handoff or failed"},
		{"mock status", "tests:\n  - name: x\n    webhooks: {crm: {status: 9}}\n    steps: [{text: a}]\n", "x.test.yaml:3:30: status must be an HTTP status code (100..599)"},
		{"no tests", "story: a.yaml\n", "x.test.yaml:1:1: field tests must be a list of test cases"},
		{"duplicate", "tests:\n  - {name: x, steps: [{text: a}]}\n  - {name: x, steps: [{text: a}]}\n", `x.test.yaml:3:5: test "x" is defined twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := storytest.Parse("x.test.yaml", []byte(tt.src))
			if err == nil || err.Error() != tt.want {
				t.Errorf("got  %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestAPIConnection: a story may name a connection made through the API
// (not in its webhooks section); its test mocks it by name.
func TestAPIConnection(t *testing.T) {
	dir := t.TempDir()
	story := "id: api\nstart: call\nnodes:\n  call:\n    type: webhook\n    webhook: crm_api\n    sets: [ok]\n    next: done\n  done:\n    type: end\n    responses: [{type: text, message: 'ok is {{ attributes.ok }}'}]\n"
	tests := "tests:\n  - name: mocked by name\n    webhooks: {crm_api: {body: {attributes: {ok: yes}}}}\n    steps:\n      - expect: {responses: [ok is yes], status: completed}\n"
	os.WriteFile(filepath.Join(dir, "api.yaml"), []byte(story), 0o644)
	os.WriteFile(filepath.Join(dir, "api.test.yaml"), []byte(tests), 0o644)
	fr := storytest.NewRunner(storytest.Options{}).RunFile(context.Background(), filepath.Join(dir, "api.test.yaml"))
	if fr.Failed() {
		var out bytes.Buffer
		fr.Write(&out, true)
		t.Fatal(out.String())
	}
}

// TestEnv: a test file sets the ${VAR} values its story loads with.
func TestEnv(t *testing.T) {
	dir := t.TempDir()
	story := "id: env\nstart: call\nwebhooks:\n  crm: {url: '${CRM_URL}', token: '${STORY_TOKEN}'}\nnodes:\n  call:\n    type: webhook\n    webhook: crm\n    next: done\n  done:\n    type: end\n    responses: [{type: text, message: done}]\n"
	tests := "env: {CRM_URL: 'https://crm.example/hook', STORY_TOKEN: t0ken}\ntests:\n  - name: loads\n    webhooks: {crm: {body: {}}}\n    steps:\n      - expect: {responses: [done]}\n"
	os.WriteFile(filepath.Join(dir, "env.yaml"), []byte(story), 0o644)
	os.WriteFile(filepath.Join(dir, "env.test.yaml"), []byte(tests), 0o644)
	fr := storytest.NewRunner(storytest.Options{}).RunFile(context.Background(), filepath.Join(dir, "env.test.yaml"))
	if fr.Failed() {
		var out bytes.Buffer
		fr.Write(&out, true)
		t.Fatal(out.String())
	}
}
