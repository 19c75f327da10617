"""The command line: a parser testable alone, one function per command."""
