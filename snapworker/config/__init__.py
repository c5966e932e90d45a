"""Configuration: pydantic models, hardened YAML loading, and error messages an operator can act on.

The package: :mod:`.models` (the pydantic models), :mod:`.checks` (the value checks they call),
:mod:`.loader` (reading the file: :func:`load_config`), :mod:`.problems` (what is wrong, where),
:mod:`.risks` (what a valid configuration may still get wrong: warnings across policies, and
what only AWS can tell). This module re-exports what the rest of snapworker imports.

Loading (:func:`load_config`) refuses a bad file with a :class:`ConfigError` that lists every
problem found, each naming the file, the line, the policy and the field::

    snapworker.yaml:14: policy 'prod-nightly': retention.keep_last: must be -1 or between 0 and
    100000 (got -5)

The file is treated as hostile input (:mod:`.loader`: size, encoding, a restricted YAML
loader).

The models are strict (``strict=True`` on top of ``extra="forbid", frozen=True``): a quoted
``"3"`` is not an integer and ``"true"`` is not a boolean, so a typo never changes meaning
silently. Durations (``keep_within``, ``unshare_after``) are written as strings (``2d``,
``1d12h``) and held as :class:`datetime.timedelta`. Cron schedules are held normalised: the
nicknames ``@daily`` and friends are expanded to their five fields.

State URL and relative paths: a relative SQLite path in ``state_url``
(``sqlite:///snapworker.db``) is resolved by SQLAlchemy against the process's current
directory, NOT against the directory of the configuration file. That is how every SQLAlchemy
tool (Alembic included) reads the same URL, so a URL means one database whoever opens it; a
service should run from its state directory or use an absolute path
(``sqlite:////var/lib/snapworker/state.db``). :attr:`Config.source_path` records where the
configuration was loaded from (for messages and ``status``); it is a private attribute, not
a model field, so it is never validated nor serialised (``model_dump``), though pydantic
compares it in ``==``.
"""

from snapworker.config.checks import REDSHIFT_RESERVED_WORDS, SUPPORT_ALIAS
from snapworker.config.checks import _state_url as _state_url
from snapworker.config.loader import (
    DEFAULT_CONFIG_FILE,
    ENV_CONFIG,
    ENV_STATE_URL,
    MAX_CONFIG_BYTES,
    load_config,
    resolve_config_path,
)
from snapworker.config.models import (
    AccountFilter,
    AwsConfig,
    Config,
    CreateSpec,
    DaemonConfig,
    FleetConfig,
    HttpConfig,
    Limits,
    Organization,
    Policy,
    ReportConfig,
    Retention,
    RetryConfig,
    Select,
    ShareSpec,
    Target,
    VerifyCheck,
    VerifyConnect,
    VerifySpec,
)
from snapworker.config.problems import ConfigError, Problem

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_CONFIG",
    "ENV_STATE_URL",
    "MAX_CONFIG_BYTES",
    "REDSHIFT_RESERVED_WORDS",
    "SUPPORT_ALIAS",
    "AccountFilter",
    "AwsConfig",
    "Config",
    "ConfigError",
    "CreateSpec",
    "DaemonConfig",
    "FleetConfig",
    "HttpConfig",
    "Limits",
    "Organization",
    "Policy",
    "Problem",
    "ReportConfig",
    "Retention",
    "RetryConfig",
    "Select",
    "ShareSpec",
    "Target",
    "VerifyCheck",
    "VerifyConnect",
    "VerifySpec",
    "load_config",
    "resolve_config_path",
]
