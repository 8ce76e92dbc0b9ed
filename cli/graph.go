package cli

import (
	"errors"
	"fmt"
	"github.com/storyflow/storyflow/nodes"
	"io"
	"slices"
	"strings"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/stories"
)

func init() {
	register(&command{
		name: "graph", args: "FILE [--format mermaid|dot|json]",
		summary: "print a story's node graph (mermaid by default)",
		run:     runGraph,
	})
	register(&command{
		name:    "schema",
		summary: "print the JSON Schema of story files, built from the node types (for editor completion)",
		run:     runSchema,
	})
}

func runGraph(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("graph", stderr)
	format := fs.String("format", "mermaid", "mermaid, dot or json")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "storyflow graph: want exactly one story file")
		fs.Usage()
		return exitUsage
	}
	if !slices.Contains(stories.GraphFormats, *format) {
		fmt.Fprintf(stderr, "storyflow graph: unknown format %q (want %s)\n", *format, strings.Join(stories.GraphFormats, ", "))
		return exitUsage
	}
	reg, err := newRegistry(nodes.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "storyflow graph: %v\n", err)
		return exitFail
	}
	story, _, err := stories.LoadFile(pos[0], stories.Options{Registry: reg})
	if err != nil {
		var le *engine.LintError
		if errors.As(err, &le) {
			for _, l := range le.Lints {
				fmt.Fprintln(stderr, lintLine(l))
			}
			fmt.Fprintf(stderr, "storyflow graph: %s does not load\n", pos[0])
		} else {
			fmt.Fprintf(stderr, "storyflow graph: %v\n", err)
		}
		return exitFail
	}
	out, err := stories.Graph(story, *format)
	if err != nil {
		fmt.Fprintf(stderr, "storyflow graph: %v\n", err)
		return exitFail
	}
	io.WriteString(stdout, out)
	if !strings.HasSuffix(out, "\n") {
		io.WriteString(stdout, "\n")
	}
	return exitOK
}

func runSchema(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("schema", stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 0 {
		fmt.Fprintln(stderr, "storyflow schema: takes no arguments")
		return exitUsage
	}
	reg, err := newRegistry(nodes.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "storyflow schema: %v\n", err)
		return exitFail
	}
	b, err := stories.Schema(reg)
	if err != nil {
		fmt.Fprintf(stderr, "storyflow schema: %v\n", err)
		return exitFail
	}
	stdout.Write(b)
	if len(b) > 0 && b[len(b)-1] != '\n' {
		io.WriteString(stdout, "\n")
	}
	return exitOK
}
