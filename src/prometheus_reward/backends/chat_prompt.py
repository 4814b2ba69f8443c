"""A prompt for the chat API that carries its chat messages with it (no look-up by text).

The judge treats every prompt as a string: it counts it, cuts it and appends leads to it. A chat
server needs the messages the string stands for; :class:`ChatPrompt` keeps them together.
"""

from __future__ import annotations

from typing import Sequence


class ChatPrompt(str):
    """A prompt for the chat API: its text (what truncation counts and the judge appends to) and
    the chat ``messages`` it stands for, carried with it, so a request never looks messages up by
    text. Appending (the judge's prefix + lead reads) keeps the messages and records the appended
    text as the assistant turn's ``continuation``.

    Example:
        >>> prompt = ChatPrompt("Rate. Hi", [{"role": "system", "content": "Rate."}, {"role": "user", "content": "Hi"}])
        >>> read = prompt + "Fine. " + "[RESULT] "
        >>> isinstance(read, ChatPrompt), read.continuation, len(read.messages)
        (True, 'Fine. [RESULT] ', 2)
    """

    messages: tuple[dict[str, str], ...]
    continuation: str

    def __new__(cls, text: str, messages: Sequence[dict[str, str]], continuation: str = "") -> "ChatPrompt":
        prompt = super().__new__(cls, text)
        prompt.messages = tuple(dict(m) for m in messages)
        prompt.continuation = continuation
        return prompt

    def __add__(self, other: str) -> "ChatPrompt":
        if not isinstance(other, str):
            return NotImplemented
        return ChatPrompt(str.__add__(self, other), self.messages, self.continuation + other)

    def __reduce__(self) -> tuple:
        return (ChatPrompt, (str(self), self.messages, self.continuation))
