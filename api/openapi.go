package api

import "github.com/gofiber/fiber/v2"

func (s *Server) openAPI(c *fiber.Ctx) error { return nil }
