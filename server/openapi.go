package server

import _ "embed"

//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI returns the OpenAPI 3.0 description of the /v1 API (also served at
// GET /v1/openapi.yaml). The tests check every real response against it.
func OpenAPI() []byte { return openapiYAML }
