"""
C{pymta report}: qmailanalog's tables from pymta-send's log.

  - L{pymta.report.logline}: one line of the log (twistd's or multilog's
    time stamp, then qmail-send's text) into a time and an event;
  - L{pymta.report.matchup}: the events joined into finished deliveries and
    finished messages, as qmailanalog's C{matchup} does;
  - L{pymta.report.tally}: the sums behind every table;
  - L{pymta.report.tables}: the tables as plain text;
  - L{pymta.report.sources}: the log files to read, rotated ones included.
"""
