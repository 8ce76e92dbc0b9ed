package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/storyflow/storyflow/storytest"
)

func init() {
	register(&command{
		name: "test", args: "[--coverage] [-v] FILE|DIR...",
		summary: "run story tests (NAME.test.yaml beside NAME.yaml; webhooks mocked); exit 1 on failure",
		run:     runTest,
	})
}

func runTest(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("test", stderr)
	coverage := fs.Bool("coverage", false, "report the nodes and branches the tests exercised")
	verbose := fs.Bool("v", false, "name every test, passed or not")
	maxSteps := fs.Int("max-steps", 100, "most nodes a turn may run")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) == 0 {
		fmt.Fprintln(stderr, "storyflow test: no files given")
		fs.Usage()
		return exitUsage
	}
	files, err := testFiles(pos)
	if err != nil {
		fmt.Fprintf(stderr, "storyflow test: %v\n", err)
		return exitFail
	}
	r := storytest.NewRunner(storytest.Options{MaxSteps: *maxSteps, Register: registerExtra})
	code := exitOK
	for _, f := range files {
		fr := r.RunFile(context.Background(), f)
		if fr.Failed() {
			code = exitFail
		}
		fr.Write(stdout, *verbose)
	}
	if *coverage {
		for _, c := range r.Coverage() {
			c.Report(stdout)
		}
	}
	return code
}

// testFiles expands the arguments: a test file as is, a directory to its
// test files, a story file to the test file beside it.
func testFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		switch {
		case st.IsDir():
			m, err := filepath.Glob(filepath.Join(a, "*"+storytest.Suffix))
			if err != nil {
				return nil, err
			}
			if len(m) == 0 {
				return nil, fmt.Errorf("%s: no *%s files", a, storytest.Suffix)
			}
			out = append(out, m...)
		case strings.HasSuffix(a, storytest.Suffix):
			out = append(out, a)
		default:
			t := strings.TrimSuffix(strings.TrimSuffix(a, ".yaml"), ".yml") + storytest.Suffix
			if _, err := os.Stat(t); err != nil {
				return nil, fmt.Errorf("%s has no tests: %s not found", a, t)
			}
			out = append(out, t)
		}
	}
	return out, nil
}
