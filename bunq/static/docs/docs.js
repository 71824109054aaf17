// The API reference page: Swagger UI over this server's own /openapi.json ("Authorize" takes a bearer token).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  tryItOutEnabled: false,
  persistAuthorization: false,
  validatorUrl: null,
});
