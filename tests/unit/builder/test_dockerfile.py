"""Dockerfile parsing, substitution and .dockerignore (the classic builder's rules)."""

from __future__ import annotations

import pytest

from services.builder.dockerfile import name_values, parse, split_words
from services.builder.dockerignore import Ignore
from services.builder.shlex import Lexer
from vocab.errors import InvalidArgument


def test_continuations_comments_and_blank_lines() -> None:
    df = parse("FROM busybox\n# a comment\nRUN echo a \\\n  # inside\n\n    && echo b\n"
               "CMD [\"sh\"]\n")
    assert [i.cmd for i in df.instructions] == ["FROM", "RUN", "CMD"]
    run = df.instructions[1]
    assert run.line == 3 and run.rest == "echo a     && echo b" and run.exec_form is None
    assert df.instructions[2].exec_form == ["sh"]


def test_escape_directive_backtick() -> None:
    df = parse("# escape=`\nFROM scratch\nCOPY a `\n  b c:\\dir\\\n")
    assert df.escape == "`"
    assert df.instructions[1].rest == "a   b c:\\dir\\"


def test_directive_only_at_top() -> None:
    df = parse("FROM x\n# escape=`\nRUN a `\n")
    assert df.escape == "\\" and df.instructions[1].rest == "a `"


def test_unknown_instruction_names_line() -> None:
    with pytest.raises(InvalidArgument, match="line 2: unknown instruction: FOO"):
        parse("FROM x\nFOO bar\n")


def test_flags_and_forms() -> None:
    df = parse("COPY --from=build --chown=app:app /a /b\nRUN [\"echo\", \"hi\"]\n"
               "RUN [not json\n")
    cp = df.instructions[0]
    assert cp.flags == {"from": "build", "chown": "app:app"} and cp.rest == "/a /b"
    assert df.instructions[1].exec_form == ["echo", "hi"]
    assert df.instructions[2].exec_form is None
    with pytest.raises(InvalidArgument, match="unknown flag: --bogus"):
        parse("COPY --bogus=1 a b\n")
    with pytest.raises(InvalidArgument, match="BuildKit"):
        parse("RUN --mount=type=cache,target=/x true\n")
    with pytest.raises(InvalidArgument, match="heredoc"):
        parse("RUN <<EOF\necho\nEOF\n")


def test_onbuild_holds_an_instruction() -> None:
    ins = parse("ONBUILD RUN echo hi\n").instructions[0]
    assert ins.sub is not None and ins.sub.cmd == "RUN" and ins.sub.rest == "echo hi"
    with pytest.raises(InvalidArgument, match="nested"):
        parse("ONBUILD ONBUILD RUN x\n")


def test_name_values() -> None:
    ins = parse('ENV A=1 B="two words" C=three\\ x\n').instructions[0]
    assert name_values(ins) == [("A", "1"), ("B", '"two words"'), ("C", "three\\ x")]
    legacy = parse("ENV NAME some value here\n").instructions[0]
    assert name_values(legacy) == [("NAME", "some value here")]
    assert split_words("a='b c' d") == ["a='b c'", "d"]


@pytest.mark.parametrize(("word", "expected"), [
    ("$A", "1"), ("${A}x", "1x"), ("'$A'", "$A"), ('"$A b"', "1 b"), ("\\$A", "$A"),
    ("${UNSET:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"), ("${EMPTY-dflt}", ""),
    ("${A:+set}", "set"), ("${UNSET:+set}", ""), ("$UNSET", ""), ("a$", "a$"),
    ('"a\\"b"', 'a"b'), ('"a\\b"', "a\\b"), ("${A:-$B}", "1"), ("${UNSET:-$B}", "2"),
])
def test_substitution(word: str, expected: str) -> None:
    env = {"A": "1", "B": "2", "EMPTY": ""}
    assert Lexer().word(word, env) == expected


def test_words_split_on_unquoted_blanks() -> None:
    assert Lexer().words('a "b c" $A', {"A": "x y"}) == ["a", "b c", "x y"]
    assert Lexer("`").word("a`$b", {}) == "a$b"


def test_dockerignore_rules() -> None:
    ig = Ignore("# comment\n*.log\n!keep.log\nbuild/\n**/tmp\nsecret*\n!secret-ok\n")
    assert ig.ignored("a.log") and not ig.ignored("keep.log")
    assert ig.ignored("build") and ig.ignored("build/x/y")
    assert ig.ignored("tmp") and ig.ignored("a/b/tmp") and ig.ignored("a/tmp/file")
    assert ig.ignored("secret1") and not ig.ignored("secret-ok")
    assert not ig.ignored("src/a.log")  # * stays within one element
    assert not ig.ignored("main.py")
    assert Ignore("/abs/./x\n").ignored("abs/x")
