"""
sendmail-style forwarding under qmail's rules: C{/etc/aliases} for the
C{fastforward} helper (compiled by C{pymta newaliases}) and a user's
C{~/.forward} for the C{dot-forward} helper (docs/dotqmail.md,
'Aliases and .forward files'; docs/internals.md, 'fastforward and
dot-forward').

Modules: L{entries} (one sendmail address list: addresses, C{|program},
C{/file}, C{:include:}), L{aliasfile} (C{/etc/aliases}), L{database} (the
compiled aliases), L{expand} (fastforward's expansion of one recipient).
"""
