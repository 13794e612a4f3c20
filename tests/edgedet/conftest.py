def pytest_terminal_summary(terminalreporter):
    """Print the bad-input corpus size whenever its cases ran (the issue asks for the count in CI logs)."""
    import sys

    corpus = sys.modules.get("test_bad_inputs") or sys.modules.get("tests.edgedet.test_bad_inputs")
    ran = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])
           if "test_bad_input[" in r.nodeid or "test_bad_input_real_process[" in r.nodeid]
    if corpus is not None and ran:
        failed = sum(r.outcome == "failed" for r in ran)
        terminalreporter.write_line(f"bad-input corpus: {len(ran)} cases run ({len(corpus.CASES)} in-process, "
                                    f"{len(ran) - len(corpus.CASES)} as real processes), {failed} failed")
