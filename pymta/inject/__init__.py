"""
qmail-inject for pymta: header parsing (L{pymta.inject.headers}), RFC 822
tokens and address lists (L{pymta.inject.tokens},
L{pymta.inject.addrlist}), address completion (L{pymta.inject.rewrite})
and the message transformation itself (L{pymta.inject.message}).  The
commands are C{pymta inject} and C{pymta sendmail} (L{pymta.cli}).
"""
