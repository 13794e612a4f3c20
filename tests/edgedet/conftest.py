def pytest_terminal_summary(terminalreporter):
    """Print the bad-input corpus size whenever its cases ran (the issue asks for the count in CI
    logs)."""
    ran = [
        r
        for key in ("passed", "failed")
        for r in terminalreporter.stats.get(key, [])
        if "test_bad_input[" in r.nodeid or "test_bad_input_real_process[" in r.nodeid
    ]
    if ran:
        real = sum("test_bad_input_real_process[" in r.nodeid for r in ran)
        failed = sum(r.outcome == "failed" for r in ran)
        terminalreporter.write_line(
            f"bad-input corpus: {len(ran)} cases run ({len(ran) - real} in-process, "
            f"{real} as real processes), {failed} failed"
        )
