package engine

import (
	"fmt"
	"regexp"
	"unicode/utf8"
)

// Response is one bot response (SPEC §2, ChatBot.com's response model).
type Response struct {
	Type     string   `json:"type"`
	Delay    int      `json:"delay,omitempty"`
	Message  string   `json:"message,omitempty"`
	Messages []string `json:"messages,omitempty"`
	ImageURL string   `json:"imageUrl,omitempty"`
	FileURL  string   `json:"fileUrl,omitempty"`
	Title    string   `json:"title,omitempty"`
	Buttons  []Button `json:"buttons,omitempty"`
	Elements []Card   `json:"elements,omitempty"`
}

// Button is a button of quickReplies, buttons and cards responses.
type Button struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Value  string `json:"value"`
	Height string `json:"height,omitempty"`
}

// Card is one element of a cards response.
type Card struct {
	Title    string   `json:"title"`
	Subtitle string   `json:"subtitle"`
	ImageURL string   `json:"imageUrl"`
	Buttons  []Button `json:"buttons"`
}

// Response types.
const (
	TypeText         = "text"
	TypeRandomText   = "randomText"
	TypeImage        = "image"
	TypeFile         = "file"
	TypeQuickReplies = "quickReplies"
	TypeButtons      = "buttons"
	TypeCards        = "cards"
)

// DefaultDelay is the delay of a response that names none, in ms.
const DefaultDelay = 1000

// ResponseTypes lists the response types in the order the docs show them.
var ResponseTypes = []string{TypeText, TypeRandomText, TypeImage, TypeFile, TypeQuickReplies, TypeButtons, TypeCards}

// ButtonTypes lists the button types.
var ButtonTypes = []string{"postback", "goto", "url", "webview", "phone"}

var phoneRe = regexp.MustCompile(`^\+[0-9]{2,}$`)

// Problem is a limit broken by a response, with the path of the field
// (e.g. "buttons[2].title") relative to the response.
type Problem struct {
	Path    string
	Message string
}

func (p Problem) Error() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Check returns the limits of SPEC §2 that r breaks. gotoOK tells whether a
// goto value names a node; nil accepts any non-empty value.
func (r *Response) Check(gotoOK func(string) bool) []Problem {
	var ps []Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{path, fmt.Sprintf(format, args...)})
	}
	if r.Delay != 0 && (r.Delay < 100 || r.Delay > 10000) {
		add("delay", "must be between 100 and 10000 ms, got %d", r.Delay)
	}
	switch r.Type {
	case TypeText:
		checkLen(add, "message", r.Message, 1, 1024)
	case TypeRandomText:
		if n := len(r.Messages); n < 1 || n > 20 {
			add("messages", "must hold 1 to 20 messages, got %d", n)
		}
		for i, m := range r.Messages {
			checkLen(add, fmt.Sprintf("messages[%d]", i), m, 1, 1024)
		}
	case TypeImage:
		checkLen(add, "imageUrl", r.ImageURL, 1, 2048)
	case TypeFile:
		checkLen(add, "fileUrl", r.FileURL, 1, 2048)
	case TypeQuickReplies:
		checkLen(add, "title", r.Title, 1, 640)
		checkButtons(add, "buttons", r.Buttons, 13, []string{"postback", "goto"}, gotoOK)
	case TypeButtons:
		checkLen(add, "title", r.Title, 1, 640)
		checkButtons(add, "buttons", r.Buttons, 5, ButtonTypes, gotoOK)
	case TypeCards:
		if n := len(r.Elements); n < 1 || n > 10 {
			add("elements", "must hold 1 to 10 cards, got %d", n)
		}
		for i, c := range r.Elements {
			p := fmt.Sprintf("elements[%d]", i)
			checkLen(add, p+".title", c.Title, 1, 80)
			checkLen(add, p+".subtitle", c.Subtitle, 1, 80)
			checkLen(add, p+".imageUrl", c.ImageURL, 1, 2048)
			checkButtons(add, p+".buttons", c.Buttons, 5, ButtonTypes, gotoOK)
		}
	case "":
		add("type", "is required")
	default:
		add("type", "unknown response type %q", r.Type)
	}
	return ps
}

func checkLen(add func(string, string, ...any), path, s string, lo, hi int) {
	n := utf8.RuneCountInString(s)
	if n < lo || n > hi {
		if lo > 0 && n == 0 {
			add(path, "is required")
			return
		}
		add(path, "must be %d to %d characters, got %d", lo, hi, n)
	}
}

func checkButtons(add func(string, string, ...any), path string, bs []Button, max int, types []string, gotoOK func(string) bool) {
	if len(bs) < 1 || len(bs) > max {
		add(path, "must hold 1 to %d buttons, got %d", max, len(bs))
	}
	for i, b := range bs {
		p := fmt.Sprintf("%s[%d]", path, i)
		if !contains(types, b.Type) {
			add(p+".type", "button type %q not allowed here (allowed: %v)", b.Type, types)
			continue
		}
		switch b.Type {
		case "postback":
			checkLen(add, p+".title", b.Title, 1, 20)
			checkLen(add, p+".value", b.Value, 1, 2000)
		case "goto":
			checkLen(add, p+".title", b.Title, 1, 20)
			if b.Value == "" {
				add(p+".value", "is required")
			} else if gotoOK != nil && !gotoOK(b.Value) {
				add(p+".value", "goto target %q names no node", b.Value)
			}
		case "url":
			checkLen(add, p+".title", b.Title, 0, 20)
			checkLen(add, p+".value", b.Value, 0, 2048)
		case "webview":
			checkLen(add, p+".title", b.Title, 1, 20)
			checkLen(add, p+".value", b.Value, 1, 2048)
			switch b.Height {
			case "", "full", "tall", "compact":
			default:
				add(p+".height", "must be full, tall or compact, got %q", b.Height)
			}
		case "phone":
			checkLen(add, p+".title", b.Title, 1, 20)
			if n := utf8.RuneCountInString(b.Value); n < 3 || n > 16 {
				checkLen(add, p+".value", b.Value, 3, 16)
			} else if !phoneRe.MatchString(b.Value) {
				add(p+".value", "must match \\+[0-9]{2,}, got %q", b.Value)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// offers tells whether r has a goto button to node.
func (r *Response) offers(node string) bool {
	for _, b := range r.Buttons {
		if b.Type == "goto" && b.Value == node {
			return true
		}
	}
	for _, card := range r.Elements {
		for _, b := range card.Buttons {
			if b.Type == "goto" && b.Value == node {
				return true
			}
		}
	}
	return false
}
