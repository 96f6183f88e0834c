"""The HTTP surface: request and response contract, the OpenAPI document, and the dashboard page.

May import both jobs (`shared.compute`, `shared.scoring`) and the platform; neither job imports it.
"""
