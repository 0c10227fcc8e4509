"""The guest agent: C sources of `uffd-agent`, and `build.build_agent()` that compiles them."""
