"""Parsing the command lines people pass to ``sh -c``: a small, honest subset of POSIX sh.

Supported: words with single quotes, double quotes and backslashes; ``$VAR``, ``${VAR}``,
``${VAR:-default}``, ``$?``, ``$$``, ``$(command)`` and ``$((arithmetic))``; ``;``, newlines,
``&&``, ``||``, ``!``, pipes; redirections ``>``, ``>>``, ``<``, ``2>``, ``2>&1``, ``>&2``;
leading ``NAME=value`` assignments; ``for NAME in WORDS; do ...; done``; ``if ...; then ...; [else ...;] fi``;
``while ...; do ...; done``; and ``# comments``. Anything else is a syntax error with sh's wording,
never a silent misreading.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ShellSyntaxError(Exception):
    pass


@dataclass(frozen=True)
class Literal:
    text: str
    quoted: bool


@dataclass(frozen=True)
class Parameter:
    name: str
    quoted: bool
    default: str | None = None


@dataclass(frozen=True)
class CommandSubstitution:
    source: str
    quoted: bool


@dataclass(frozen=True)
class Arithmetic:
    expression: str
    quoted: bool


Part = Literal | Parameter | CommandSubstitution | Arithmetic


@dataclass(frozen=True)
class Word:
    parts: tuple[Part, ...]

    def plain(self) -> str | None:
        """The word's text when it holds no expansion and no quoting (keywords, names)."""
        if all(isinstance(part, Literal) and not part.quoted for part in self.parts):
            return "".join(part.text for part in self.parts if isinstance(part, Literal))
        return None


@dataclass(frozen=True)
class Redirect:
    fd: int
    op: str  # ">", ">>", "<", ">&"
    target: Word


@dataclass
class Simple:
    assignments: list[tuple[str, Word]] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    redirects: list[Redirect] = field(default_factory=list)


@dataclass
class ForLoop:
    name: str
    items: list[Word]
    body: Sequence


@dataclass
class IfClause:
    branches: list[tuple[Sequence, Sequence]]
    otherwise: Sequence | None


@dataclass
class WhileLoop:
    condition: Sequence
    body: Sequence
    until: bool = False


Command = Simple | ForLoop | IfClause | WhileLoop


@dataclass
class Pipeline:
    commands: list[Command]
    negated: bool = False


@dataclass
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]] = field(default_factory=list)


@dataclass
class Sequence:
    items: list[AndOr] = field(default_factory=list)


_OPERATORS = ("&&", "||", ">>", ">&", ";", "|", "&", ">", "<", "\n", "(", ")")
_KEYWORDS_ENDING_LIST = {"do", "done", "then", "else", "elif", "fi"}
_NAME_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | set("0123456789")


@dataclass(frozen=True)
class Token:
    kind: str  # "word" or "op"
    text: str
    word: Word | None = None


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    index = 0
    length = len(source)
    while index < length:
        char = source[index]
        if char in " \t":
            index += 1
            continue
        if char == "\\" and source.startswith("\\\n", index):
            index += 2
            continue
        if char == "#":
            while index < length and source[index] != "\n":
                index += 1
            continue
        if char.isdigit() and source[index + 1 : index + 2] in ("<", ">"):
            tokens.append(Token("fd", char))
            index += 1
            continue
        operator = next((op for op in _OPERATORS if source.startswith(op, index)), None)
        if operator is not None:
            tokens.append(Token("op", operator))
            index += len(operator)
            continue
        word, index = _read_word(source, index)
        tokens.append(Token("word", "", word))
    return tokens


def _read_word(source: str, index: int) -> tuple[Word, int]:
    parts: list[Part] = []
    buffer: list[str] = []

    def flush(quoted: bool) -> None:
        if buffer:
            parts.append(Literal("".join(buffer), quoted))
            buffer.clear()

    length = len(source)
    while index < length:
        char = source[index]
        if char in " \t\n;&|<>()":
            break
        if char == "\\":
            if index + 1 < length:
                flush(False)
                parts.append(Literal(source[index + 1], True))
            index += 2
            continue
        if char == "'":
            end = source.find("'", index + 1)
            if end < 0:
                raise ShellSyntaxError("Unterminated quoted string")
            flush(False)
            parts.append(Literal(source[index + 1 : end], True))
            index = end + 1
            continue
        if char == '"':
            flush(False)
            index = _read_double_quoted(source, index + 1, parts)
            continue
        if char == "$":
            expansion, next_index = _read_dollar(source, index, quoted=False)
            if expansion is not None:
                flush(False)
                parts.append(expansion)
                index = next_index
                continue
        buffer.append(char)
        index += 1
    flush(False)
    if not parts:
        parts.append(Literal("", True))
    return Word(tuple(parts)), index


def _read_double_quoted(source: str, index: int, parts: list[Part]) -> int:
    buffer: list[str] = []
    had_content = False
    length = len(source)
    while index < length:
        char = source[index]
        if char == '"':
            if buffer or not had_content:
                parts.append(Literal("".join(buffer), True))
            return index + 1
        if char == "\\" and index + 1 < length and source[index + 1] in '$`"\\\n':
            if source[index + 1] != "\n":
                buffer.append(source[index + 1])
            index += 2
            continue
        if char == "$":
            expansion, next_index = _read_dollar(source, index, quoted=True)
            if expansion is not None:
                if buffer:
                    parts.append(Literal("".join(buffer), True))
                    buffer.clear()
                parts.append(expansion)
                had_content = True
                index = next_index
                continue
        buffer.append(char)
        index += 1
    raise ShellSyntaxError("Unterminated quoted string")


def _read_dollar(source: str, index: int, *, quoted: bool) -> tuple[Part | None, int]:
    """Parse the expansion starting at ``source[index] == "$"``; ``None`` when it is a plain $."""
    after = index + 1
    if after >= len(source):
        return None, after
    char = source[after]
    if source.startswith("((", after):
        end = source.find("))", after + 2)
        if end < 0:
            raise ShellSyntaxError("Missing '))'")
        return Arithmetic(source[after + 2 : end], quoted), end + 2
    if char == "(":
        end = _matching_paren(source, after)
        return CommandSubstitution(source[after + 1 : end], quoted), end + 1
    if char == "{":
        end = source.find("}", after)
        if end < 0:
            raise ShellSyntaxError("Missing '}'")
        inner = source[after + 1 : end]
        name, sep, default = inner.partition(":-")
        if not _is_name(name) and name not in ("?", "$", "#"):
            raise ShellSyntaxError(f"{source[index : end + 1]}: bad substitution")
        return Parameter(name, quoted, default if sep else None), end + 1
    if char in "?$#":
        return Parameter(char, quoted), after + 1
    if char.isdigit():
        return Parameter(char, quoted), after + 1
    if char in _NAME_START:
        end = after
        while end < len(source) and source[end] in _NAME_CHARS:
            end += 1
        return Parameter(source[after:end], quoted), end
    return None, after


def _matching_paren(source: str, open_index: int) -> int:
    depth = 0
    index = open_index
    quote: str | None = None
    while index < len(source):
        char = source[index]
        if quote is not None:
            if char == quote:
                quote = None
            elif char == "\\" and quote == '"':
                index += 1
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise ShellSyntaxError("Missing ')'")


def _is_name(text: str) -> bool:
    return bool(text) and text[0] in _NAME_START and all(char in _NAME_CHARS for char in text)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def peek_keyword(self) -> str | None:
        token = self.peek()
        if token is None or token.word is None:
            return None
        return token.word.plain()

    def take(self) -> Token:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def skip_newlines(self) -> None:
        while (token := self.peek()) is not None and token.kind == "op" and token.text in ("\n", ";"):
            self.take()

    def expect_keyword(self, keyword: str) -> None:
        self.skip_newlines()
        if self.peek_keyword() != keyword:
            token = self.peek()
            found = self.peek_keyword() or (token.text if token is not None else "end of file")
            raise ShellSyntaxError(f'Syntax error: "{found}" unexpected (expecting "{keyword}")')
        self.take()

    def sequence(self, terminators: frozenset[str] = frozenset()) -> Sequence:
        result = Sequence()
        while True:
            self.skip_newlines()
            token = self.peek()
            if token is None:
                return result
            keyword = self.peek_keyword()
            if keyword is not None and keyword in terminators:
                return result
            if token.kind == "op" and token.text == ")":
                raise ShellSyntaxError('Syntax error: ")" unexpected')
            result.items.append(self.and_or())
            token = self.peek()
            if token is not None and token.kind == "op" and token.text == "&":
                raise ShellSyntaxError("background jobs (&) are not supported")

    def and_or(self) -> AndOr:
        node = AndOr(self.pipeline())
        while (token := self.peek()) is not None and token.kind == "op" and token.text in ("&&", "||"):
            self.take()
            while (nl := self.peek()) is not None and nl.kind == "op" and nl.text == "\n":
                self.take()
            node.rest.append((token.text, self.pipeline()))
        return node

    def pipeline(self) -> Pipeline:
        negated = False
        if self.peek_keyword() == "!":
            self.take()
            negated = True
        commands = [self.command()]
        while (token := self.peek()) is not None and token.kind == "op" and token.text == "|":
            self.take()
            while (nl := self.peek()) is not None and nl.kind == "op" and nl.text == "\n":
                self.take()
            commands.append(self.command())
        return Pipeline(commands, negated)

    def command(self) -> Command:
        keyword = self.peek_keyword()
        if keyword == "for":
            return self.for_loop()
        if keyword == "if":
            return self.if_clause()
        if keyword in ("while", "until"):
            return self.while_loop()
        if keyword in _KEYWORDS_ENDING_LIST:
            raise ShellSyntaxError(f'Syntax error: "{keyword}" unexpected')
        return self.simple()

    def simple(self) -> Simple:
        node = Simple()
        while (token := self.peek()) is not None:
            if token.kind == "fd":
                self.take()
                operator = self.peek()
                if operator is None or operator.text not in (">", ">>", "<", ">&"):
                    raise ShellSyntaxError("Syntax error: bad redirection")
                self.take()
                node.redirects.append(self.redirect(operator.text, int(token.text)))
                continue
            if token.kind == "word":
                assert token.word is not None
                self.take()
                assignment = _assignment(token.word)
                if assignment is not None and not node.words:
                    node.assignments.append(assignment)
                else:
                    node.words.append(token.word)
                continue
            if token.text in (">", ">>", "<", ">&"):
                self.take()
                node.redirects.append(self.redirect(token.text, None))
                continue
            break
        if not node.words and not node.assignments and not node.redirects:
            token = self.peek()
            found = "end of file" if token is None else (token.text or "word").replace("\n", "newline")
            raise ShellSyntaxError(f'Syntax error: "{found}" unexpected')
        return node

    def redirect(self, op: str, fd: int | None) -> Redirect:
        token = self.peek()
        if token is None or token.kind != "word" or token.word is None:
            raise ShellSyntaxError("Syntax error: redirection without a target")
        self.take()
        default_fd = 0 if op == "<" else 1
        return Redirect(default_fd if fd is None else fd, op, token.word)

    def for_loop(self) -> ForLoop:
        self.take()
        token = self.peek()
        name = self.peek_keyword()
        if token is None or name is None or not _is_name(name):
            raise ShellSyntaxError("Syntax error: Bad for loop variable")
        self.take()
        items: list[Word] = []
        if self.peek_keyword() == "in":
            self.take()
            while (token := self.peek()) is not None and token.kind == "word":
                assert token.word is not None
                items.append(token.word)
                self.take()
        self.expect_keyword("do")
        body = self.sequence(frozenset({"done"}))
        self.expect_keyword("done")
        return ForLoop(name, items, body)

    def if_clause(self) -> IfClause:
        self.take()
        branches: list[tuple[Sequence, Sequence]] = []
        otherwise: Sequence | None = None
        while True:
            condition = self.sequence(frozenset({"then"}))
            self.expect_keyword("then")
            body = self.sequence(frozenset({"elif", "else", "fi"}))
            branches.append((condition, body))
            keyword = self.peek_keyword()
            if keyword == "elif":
                self.take()
                continue
            if keyword == "else":
                self.take()
                otherwise = self.sequence(frozenset({"fi"}))
            self.expect_keyword("fi")
            return IfClause(branches, otherwise)

    def while_loop(self) -> WhileLoop:
        until = self.peek_keyword() == "until"
        self.take()
        condition = self.sequence(frozenset({"do"}))
        self.expect_keyword("do")
        body = self.sequence(frozenset({"done"}))
        self.expect_keyword("done")
        return WhileLoop(condition, body, until)


def _assignment(word: Word) -> tuple[str, Word] | None:
    first = word.parts[0]
    if not isinstance(first, Literal) or first.quoted or "=" not in first.text:
        return None
    name, _, rest = first.text.partition("=")
    if not _is_name(name):
        return None
    value_parts: tuple[Part, ...] = ((Literal(rest, False),) if rest else ()) + word.parts[1:]
    return name, Word(value_parts or (Literal("", True),))


def parse(source: str) -> Sequence:
    parser = _Parser(tokenize(source))
    tree = parser.sequence()
    if parser.peek() is not None:
        token = parser.take()
        raise ShellSyntaxError(f'Syntax error: "{token.text or token.word}" unexpected')
    return tree


def parse_quoted(text: str) -> Word:
    """``text`` read as if between double quotes (for ``${VAR:-default}`` defaults)."""
    parts: list[Part] = []
    _read_double_quoted(text + '"', 0, parts)
    return Word(tuple(parts) or (Literal("", True),))
