"""The commands of `ablation`: one module per command, each with `main(args) -> exit code`.

`ablation/cli.py` only parses arguments; a command module loads what its stage needs, calls it
and prints. Exit codes: 0 done, 1 a trial or run failed, 2 the user's input is wrong.
"""
