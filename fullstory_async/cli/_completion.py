"""``fullstory-async completion bash|zsh|fish``: a completion script for the shell, from the parser.

::

    source <(fullstory-async completion bash)          # ~/.bashrc
    fullstory-async completion zsh > "${fpath[1]}/_fullstory-async"
    fullstory-async completion fish > ~/.config/fish/completions/fullstory-async.fish
"""

from __future__ import annotations

import argparse

SHELLS = ("bash", "zsh", "fish")


def options(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``completion``."""
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")


def _words(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """``{"": top-level words, "endpoints list": its flags, ...}`` from the parser itself."""
    words: dict[str, list[str]] = {}

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        flags = [flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")]
        children: list[str] = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    children.append(name)
                    walk(child, f"{path} {name}".strip())
            elif action.choices and not action.option_strings:
                children += [str(choice) for choice in action.choices]
        words[path] = sorted(set(children)) + sorted(set(flags))

    walk(parser, "")
    return words


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """Return the completion script for ``shell``: commands, actions and each command's flags."""
    prog = parser.prog
    words = _words(parser)
    if shell == "fish":
        lines = []
        for path, choices in words.items():
            condition = f"__fish_seen_subcommand_from {path.split()[-1]}" if path else "__fish_use_subcommand"
            lines += [f"complete -c {prog} -n '{condition}' -f -a '{word}'" for word in choices]
        return "\n".join(lines) + "\n"
    cases = "\n".join(f'        "{path}") words="{" ".join(choices)}" ;;' for path, choices in words.items() if path)
    known = "|".join(path for path in words if path)
    body = f"""_fullstory_async() {{
    local cur path="" word words candidate known="|{known}|"
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    for word in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
        candidate="${{path:+$path }}$word"
        [[ "$known" == *"|$candidate|"* ]] && path="$candidate"
    done
    case "$path" in
{cases}
        *) words="{" ".join(words[""])}" ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
"""
    if shell == "zsh":
        head = f"#compdef {prog}\nautoload -U bashcompinit && bashcompinit\n"
        return head + body + f"complete -F _fullstory_async {prog}\n"
    return body + f"complete -o default -F _fullstory_async {prog}\n"


def run(args: argparse.Namespace) -> int:
    """Print the script for ``args.shell``."""
    from fullstory_async.cli import parser

    print(script(args.shell, parser()), end="")
    return 0
