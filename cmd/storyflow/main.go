// Command storyflow is the story engine's command line: serve stories,
// validate them, talk to them in the terminal, test them, draw their graph,
// print the JSON Schema (see package cli).
package main

import "github.com/storyflow/storyflow/cli"

func main() { cli.Main() }
