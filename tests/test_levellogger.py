"""pymta.levellogger: the same events as Twisted's Logger, with a cheaper level check."""

from __future__ import annotations

from twisted.logger import Logger as TwistedLogger, LogLevel
from twisted.trial.unittest import SynchronousTestCase

from pymta.levellogger import Logger


class SameEvents(SynchronousTestCase):
    def events(self, logger_class: type[TwistedLogger], level: object) -> list[dict]:
        seen: list[dict] = []
        logger = logger_class(namespace="pymta.test", source=self, observer=seen.append)
        logger.emit(level, "x {n}", n=1)  # type: ignore[arg-type]
        for event in seen:
            event.pop("log_time")
            event.pop("log_logger")
            if "log_failure" in event:
                event["log_failure"] = event["log_failure"].type
            event.pop("logger", None)  # the logger itself (a different object in each run)
        return seen

    def test_every_level(self) -> None:
        for level in LogLevel.iterconstants():
            self.assertEqual(self.events(Logger, level), self.events(TwistedLogger, level))
            self.assertEqual(self.events(Logger, level)[0]["log_level"], level)

    def test_an_unknown_level_is_reported_as_twisted_does(self) -> None:
        ours, theirs = self.events(Logger, "loud"), self.events(TwistedLogger, "loud")
        self.assertEqual(len(ours), 1)
        self.assertEqual(ours, theirs)
        self.assertEqual(ours[0]["log_level"], LogLevel.critical)

    def test_namespace_from_the_module(self) -> None:
        self.assertEqual(Logger().namespace, __name__)

    def test_info_has_the_time(self) -> None:
        seen: list[dict] = []
        Logger(observer=seen.append).info("hello")
        self.assertIsInstance(seen[0]["log_time"], float)
        self.assertEqual(seen[0]["log_format"], "hello")
