package api

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
)

// observeRequests writes errors as answers (so that the status is known
// here), counts every request and logs it: method, path without the query,
// route, status, duration, client IP and sizes. Headers, query strings
// and bodies are never logged: they hold tokens, passwords, signatures and
// users' messages.
func (s *Server) observeRequests(c *fiber.Ctx) error {
	began := time.Now()
	if err := c.Next(); err != nil {
		if werr := s.errorHandler(c, err); werr != nil {
			return werr
		}
	}
	status := c.Response().StatusCode()
	route := c.Route().Path
	if c.Route().Method == "USE" && status >= 400 {
		route = "unmatched" // no route took it: keep the label set bounded
	}
	s.metrics.requestCache.with(route, c.Method(), strconv.Itoa(status)).Inc()
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	if !s.log.Enabled(context.Background(), level) {
		return nil
	}
	s.log.LogAttrs(context.Background(), level, "request",
		slog.String("method", c.Method()),
		slog.String("path", c.Path()),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("ms", float64(time.Since(began).Microseconds())/1000),
		slog.String("ip", c.IP()),
		slog.Int("in", len(c.Request().Body())),
		slog.Int("out", len(c.Response().Body())),
	)
	return nil
}
