// /api/docs: Swagger UI (the global `SwaggerUIBundle`, from the swagger-ui-bundle package) on
// the API's schema, as OpenAPI 3.0 (see server/openapi.py: this Swagger UI reads no 3.1).
// A classic script, not a module: it runs after swagger-ui-bundle.js, in order.

window.ui = SwaggerUIBundle({
  url: "/api/openapi-3.0.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null, // no badge fetched from validator.swagger.io
});
