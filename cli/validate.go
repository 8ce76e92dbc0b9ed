package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/storyflow/storyflow/api"
	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
)

func init() {
	register(&command{
		name: "validate", args: "[--json] FILE...",
		summary: "check story files: print every error and warning; exit 1 if any file has errors",
		run:     runValidate,
	})
}

// fileReport is what validate found in one file.
type fileReport struct {
	File     string        `json:"file"`
	OK       bool          `json:"ok"`
	Errors   int           `json:"errors"`
	Warnings int           `json:"warnings"`
	Lints    []engine.Lint `json:"-"`
	// JSON holds the lints as the API shows them (--json).
	JSON []api.Lint `json:"lints"`
}

func runValidate(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("validate", stderr)
	asJSON := fs.Bool("json", false, "print the lints as JSON")
	storyEnv := fs.String("story-env", strings.Join(stories.DefaultEnv, ","), "the ${VAR} names stories may use: names and PREFIX_* patterns, comma separated")
	files, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(err)
	}
	env, err := stories.ParseEnv(*storyEnv)
	if err != nil {
		fmt.Fprintf(stderr, "storyflow validate: --story-env: %v\n", err)
		return exitUsage
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "storyflow validate: no files given")
		fs.Usage()
		return exitUsage
	}
	code := exitOK
	reports := make([]fileReport, 0, len(files))
	for _, f := range files {
		r := validateFile(f, env)
		if !r.OK {
			code = exitFail
		}
		reports = append(reports, r)
		if *asJSON {
			continue
		}
		for _, l := range r.Lints {
			fmt.Fprintln(stdout, lintLine(l))
		}
		fmt.Fprintln(stdout, r.summary())
	}
	if *asJSON {
		for i := range reports {
			reports[i].JSON = api.LintsOf(reports[i].Lints)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"files": reports}); err != nil {
			fmt.Fprintf(stderr, "storyflow validate: %v\n", err)
			return exitFail
		}
	}
	return code
}

// validateFile loads one story with the default registry.
func validateFile(file string, env []string) fileReport {
	r := fileReport{File: file, Lints: []engine.Lint{}}
	reg, err := newRegistry(nodes.Options{})
	if err != nil {
		r.OK = false
		r.Errors = 1
		r.Lints = append(r.Lints, engine.Lint{File: file, Line: 1, Column: 1, Message: err.Error()})
		return r
	}
	_, warnings, err := stories.LoadFile(file, stories.Options{Registry: reg, Env: env})
	var le *engine.LintError
	switch {
	case errors.As(err, &le):
		r.Lints = le.Lints
	case err != nil:
		r.Lints = []engine.Lint{{File: file, Message: err.Error()}}
	default:
		r.Lints = append(r.Lints, warnings...)
	}
	for _, l := range r.Lints {
		if l.Warning {
			r.Warnings++
		} else {
			r.Errors++
		}
	}
	r.OK = r.Errors == 0
	return r
}

// lintLine is a lint as a line; a lint with no position (a file that cannot
// be read) prints as "file: message".
func lintLine(l engine.Lint) string {
	if l.Line == 0 {
		return l.File + ": " + l.Message
	}
	return l.String()
}

// summary is the last line printed for a file: "support.yaml: ok (2 warnings)".
func (r fileReport) summary() string {
	if r.OK {
		if r.Warnings == 0 {
			return r.File + ": ok"
		}
		return fmt.Sprintf("%s: ok (%s)", r.File, count(r.Warnings, "warning"))
	}
	s := fmt.Sprintf("%s: %s", r.File, count(r.Errors, "error"))
	if r.Warnings > 0 {
		s += ", " + count(r.Warnings, "warning")
	}
	return s
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
