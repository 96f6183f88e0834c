"""Local stand-in for the Azure Functions host and App Service sandbox: runs function_app.app unmodified."""
