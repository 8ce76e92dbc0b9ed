// Package cli is the storyflow command line: serve, validate, chat, test,
// graph and schema. The storyflow binary is one call of Main; a binary with
// more node types is another:
//
//	func main() { cli.Main(split.Register) }
//
// Every command then knows the extra types: validate lints them, schema
// describes them, graph draws them, chat, test and serve run them. Run is
// the same without the process, for tests and embedding. Write node types
// against package engine; examples/customnode is a complete custom binary.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
)

// version, when set at build time (-ldflags "-X github.com/storyflow/storyflow/cli.version=v1.2.3"),
// overrides the module version of the build information.
var version = ""

// command is one subcommand.
type command struct {
	name, args, summary string
	run                 func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

// commands holds the subcommands; each file registers its own in init.
var commands = map[string]*command{}

// register adds a subcommand; a duplicate name panics.
func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("storyflow: command " + c.name + " registered twice")
	}
	commands[c.name] = c
}

func init() {
	register(&command{name: "version", summary: "print the version", run: runVersion})
}

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// Main runs the command line with os.Args and exits. register adds node
// types to every registry the commands build, after the built-in ones; a
// name taken twice is an error the command reports.
func Main(register ...func(*engine.Registry) error) {
	// Random ids (chats, webhook message ids) from a buffered pool, not a
	// getrandom call each.
	uuid.EnableRandPool()
	os.Exit(Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, register...))
}

// Run is Main without the process: it runs the command line args (without
// the program name) on the given streams and returns the exit code: 0 for
// success, 1 for a failure, 2 for a usage error. It is not safe to run
// twice at once.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer, register ...func(*engine.Registry) error) int {
	extra = register
	return run(args, stdin, stdout, stderr)
}

// extra are the node types Main was given.
var extra []func(*engine.Registry) error

// registerExtra adds the extra node types to r.
func registerExtra(r *engine.Registry) error {
	for _, add := range extra {
		if err := add(r); err != nil {
			return fmt.Errorf("register node types: %w", err)
		}
	}
	return nil
}

// newRegistry is a registry of the built-in and the extra node types.
func newRegistry(o nodes.Options) (*engine.Registry, error) {
	r := nodes.NewRegistry(o)
	return r, registerExtra(r)
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				return c.run([]string{"-h"}, stdin, stdout, stdout)
			}
			fmt.Fprintf(stderr, "storyflow: unknown command %q\n\n", args[1])
			usage(stderr)
			return exitUsage
		}
		usage(stdout)
		return exitOK
	case "-version", "--version":
		name = "version"
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(stderr, "storyflow: unknown command %q\n\n", name)
		usage(stderr)
		return exitUsage
	}
	if asksHelp(args[1:]) {
		// Asked for, the usage is the answer: stdout, like help COMMAND.
		return c.run(args[1:], stdin, stdout, stdout)
	}
	return c.run(args[1:], stdin, stdout, stderr)
}

// asksHelp tells whether args hold -h, -help or --help before any "--".
func asksHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

func lookup(name string) *command { return commands[name] }

func usage(w io.Writer) {
	fmt.Fprintln(w, "storyflow: chatbot stories as YAML node graphs")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage:")
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		c := commands[name]
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  storyflow %-9s %s", c.name, c.args), " "))
		fmt.Fprintf(w, "            %s\n", c.summary)
	}
	fmt.Fprintln(w, "  storyflow help COMMAND")
	fmt.Fprintln(w, "            show a command's flags")
}

// newFlags returns a flag set for command name that writes to stderr.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("storyflow "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if c := lookup(name); c != nil {
		fs.Usage = func() {
			fmt.Fprintf(stderr, "Usage: storyflow %s %s\n\n%s\n", c.name, c.args, c.summary)
			if hasFlags(fs) {
				fmt.Fprintln(stderr, "\nFlags:")
				fs.PrintDefaults()
			}
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseFlags parses args allowing flags after the positional arguments
// (storyflow graph x.yaml --format dot): flags are moved in front first.
// It returns the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

// flagExit is the exit code after a flag parse error: 0 for -h, else usage.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// reorder moves flags (and the values of non-boolean flags) before the
// positional arguments. Everything after "--" stays positional.
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil || isBool(f) {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return append(append(flags, "--"), pos...)
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func runVersion(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("version", stderr)
	if _, err := parseFlags(fs, args); err != nil {
		return flagExit(err)
	}
	fmt.Fprintln(stdout, versionLine())
	return exitOK
}

// versionLine is "storyflow <module version> (<revision>) <go version>":
// the version of the build information (a tag, or a pseudo-version from
// the VCS), "(devel)" when the build had none.
func versionLine() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if v == "" && ok {
		v = bi.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	line := "storyflow " + v
	if ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
		if rev != "" {
			line += " (" + rev[:min(12, len(rev))] + dirty + ")"
		}
		line += " " + bi.GoVersion
	}
	return line
}
