"""The neural computer you use: the runtime (reset/step), hybrid reasoning engines, the web server."""
