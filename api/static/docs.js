// Swagger UI over this server's own document; in a file of its own, since the pages' policy allows no inline script.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  // No validator badge: it would send the document to a third-party service.
  validatorUrl: null,
  deepLinking: true,
});
