"""Plugins without a model: loading, what the built-ins register, the registry's checks,
argument decoding, error replies, the CLI hook, and the meta-test that every hook
has a test and a documented section.

The misbehaving and recording plugins are test doubles from ``plugin_doubles``;
the end-to-end tests against a running kernel are in ``test_plugins_e2e.py``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import msgspec
import pluggy
import pytest
from conftest import BUILTIN_PLUGINS
from plugin_doubles import bad, misspelt, policy

from llmos import __version__
from llmos.cli import cli
from llmos.cli.plugins import add_plugin_commands
from llmos.kernel.plugin_host import PluginError, PluginHost
from llmos.plugins import hookspecs
from llmos.plugins.manager import (
    DEFAULT_PLUGINS,
    collect,
    plugin_infos,
    plugin_manager,
    wanted,
)
from llmos.plugins.registry import Registry
from llmos.syscalls.calls import plugin_call
from llmos.syscalls.errors import (
    InvalidArgument,
    NotImplementedSyscall,
    TimedOut,
)
from llmos.syscalls.protocol import decode_request, encode
from llmos.syscalls.requests import Call, Plugins

TESTS = Path(__file__).parent
DOCS = TESTS.parent / "docs" / "plugins.md"
TASKS = {  # preset -> (syscall, the plugin that adds both)
    "machine_translation": ("translate", "translation"),
    "summarization": ("summarize", "summarisation"),
    "code_generation": ("codegen", "codegen"),
    "question_answering": ("ask", "qa"),
    "music_generation": ("compose", "music"),
}
CLI_COMMANDS = {"translate", "summarize", "codegen", "ask", "compose"}


def hook_names() -> list[str]:
    """Every hook ``plugins/hookspecs.py`` declares."""
    return sorted(name for name, value in vars(hookspecs).items() if hasattr(value, "llmos_spec"))


def names(pm: pluggy.PluginManager) -> set[str]:
    return {name for name, _ in pm.list_name_plugin()}


@pytest.fixture
def host() -> Iterator[PluginHost]:
    """The translation plugin and the misbehaving double, with no kernel behind them."""
    loaded = PluginHost.load("translation,plugin_doubles.bad")
    yield loaded
    loaded.threads.shutdown()


def serve(host: PluginHost, name: str, args: bytes) -> dict[str, Any]:
    """One plugin syscall served by ``host`` with no syscall table: for handlers that
    never reach the kernel (or fail before they would)."""
    table: Any = None
    reply = asyncio.run(host.call(table, 1000, Call(name=name, args=msgspec.Raw(args))))
    decoded: dict[str, Any] = msgspec.msgpack.decode(reply.result)
    return decoded


# -- which plugins load -------------------------------------------------------


def test_wanted_reads_the_spec_or_llmos_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert wanted("") is None and wanted("  ") is None  # all
    assert wanted("none") == set() and wanted("NONE") == set()
    assert wanted(" qa, translation ,,") == {"qa", "translation"}
    monkeypatch.setenv("LLMOS_PLUGINS", "codegen")
    assert wanted() == {"codegen"}
    monkeypatch.delenv("LLMOS_PLUGINS")
    assert wanted() is None


def test_none_loads_no_plugin() -> None:
    pm = plugin_manager("none")
    assert names(pm) == set()
    registry = collect(pm)
    assert not registry.syscalls and not registry.presets


def test_a_list_loads_only_those_plugins() -> None:
    assert names(plugin_manager("translation,qa")) == {"translation", "qa"}
    assert names(plugin_manager("qa,no_such_plugin")) == {"qa"}


def test_the_suite_loads_exactly_the_builtins() -> None:
    # conftest sets LLMOS_PLUGINS; whatever else is installed stays out
    assert names(plugin_manager()) == set(BUILTIN_PLUGINS)
    builtins = tuple(module.rsplit(".", 1)[-1] for module in DEFAULT_PLUGINS)
    assert builtins == BUILTIN_PLUGINS


def test_a_dotted_name_imports_that_module_as_a_plugin() -> None:
    pm = plugin_manager("qa,plugin_doubles.policy")
    assert names(pm) == {"qa", "plugin_doubles.policy"}
    assert pm.get_plugin("plugin_doubles.policy") is policy


def test_entry_points_load_only_when_named(monkeypatch: pytest.MonkeyPatch) -> None:
    stray = importlib.metadata.EntryPoint("stray", "plugin_doubles.policy", "llmos")
    other = importlib.metadata.EntryPoint("other", "plugin_doubles.policy", "not-llmos")

    def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
        return [ep for ep in (stray, other) if ep.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert names(plugin_manager("qa")) == {"qa"}
    assert names(plugin_manager("qa,stray")) == {"qa", "stray"}
    assert "stray" in names(plugin_manager(""))  # unset: everything installed loads


def test_check_pending_catches_a_misspelt_hook() -> None:
    pm = pluggy.PluginManager("llmos")
    pm.add_hookspecs(hookspecs)
    pm.register(misspelt, name="misspelt")
    with pytest.raises(pluggy.PluginValidationError, match="llmos_register_sycalls"):
        pm.check_pending()


def test_a_plugin_with_a_misspelt_hook_is_left_out_and_the_others_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="llmos.plugins"):
        pm = plugin_manager("qa,plugin_doubles.misspelt")
    assert names(pm) == {"qa"}
    assert "plugin_doubles.misspelt left out" in caplog.text
    registry = collect(pm)
    assert set(registry.syscalls) == {"ask"}
    assert "misspelt_preset" not in registry.presets  # its well-spelt hook went with it


@pytest.mark.parametrize("module", ["plugin_doubles.unimportable", "plugin_doubles.no_such"])
def test_a_plugin_that_fails_to_import_is_logged_and_skipped(
    module: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="llmos.plugins"):
        pm = plugin_manager(f"qa,{module}")
    assert names(pm) == {"qa"}
    assert f"plugin {module} failed to load" in caplog.text


# -- what the built-ins register ---------------------------------------------


def test_builtins_register_their_syscalls_and_presets() -> None:
    registry = collect(plugin_manager())
    assert set(registry.syscalls) == {syscall for syscall, _ in TASKS.values()}
    assert set(registry.presets) == set(TASKS)
    for preset_name, (syscall, plugin) in TASKS.items():
        spec, preset = registry.syscalls[syscall], registry.presets[preset_name]
        assert spec.plugin == plugin and preset.task == syscall
        assert spec.doc, f"{syscall} has no docstring"
        assert issubclass(spec.params, msgspec.Struct) and issubclass(spec.result, msgspec.Struct)
        assert spec.params.__struct_config__.forbid_unknown_fields
    assert registry.presets["machine_translation"].defaults == {"temperature": 0.0}
    assert not registry.policies and not registry.drivers


def test_the_music_plugin_registers_compose() -> None:
    registry = collect(plugin_manager("music"))
    assert registry.presets["music_generation"].task == "compose"
    assert {"description"} <= set(registry.syscalls["compose"].params.__struct_fields__)


def test_plugin_infos_give_name_version_and_hooks() -> None:
    infos = {info.name: info for info in plugin_infos(plugin_manager("qa,plugin_doubles.policy"))}
    assert infos["qa"].version == __version__
    assert infos["qa"].hooks == ("llmos_cli", "llmos_register_models", "llmos_register_syscalls")
    double = infos["plugin_doubles.policy"]
    assert double.version == policy.__version__
    assert double.hooks == (
        "llmos_process_exit",
        "llmos_register_drivers",
        "llmos_register_policies",
        "llmos_register_syscalls",
    )


def test_the_plugins_reply_lists_syscalls_by_plugin(host: PluginHost) -> None:
    reply = host.infos()
    by_name = {plugin.name: plugin for plugin in reply.plugins}
    assert by_name["translation"].syscalls == ["translate"]
    assert by_name["plugin_doubles.bad"].syscalls == [
        "bad_hang",
        "bad_raise",
        "bad_spawn_then_raise",
        "bad_wrong_type",
    ]
    assert by_name["plugin_doubles.bad"].version == bad.__version__
    translate = next(info for info in reply.syscalls if info.name == "translate")
    assert translate.plugin == "translation" and "target_lang" in translate.params
    assert translate.doc.startswith("Translate")
    assert reply.presets == {"machine_translation": "translate on default"}


# -- the registry's checks ----------------------------------------------------


class Params(msgspec.Struct):
    """A test's syscall parameters."""

    text: str = ""


async def echo(kernel: Any, params: Params) -> Params:
    """Return the parameters."""
    return params


def not_async(kernel: Any, params: Params) -> Params:
    return params


@pytest.mark.parametrize(
    ("name", "handler", "params", "result", "match"),
    [
        ("sync", not_async, Params, Params, "async function"),
        ("dict_params", echo, dict, Params, "msgspec Structs"),
        ("instance_params", echo, Params(), Params, "msgspec Structs"),
        ("dict_result", echo, Params, dict, "msgspec Structs"),
        ("not-an-identifier", echo, Params, Params, "identifier"),
        ("echo", echo, Params, Params, "taken"),
    ],
)
def test_the_registry_refuses_what_breaks_the_contract(
    name: str, handler: Any, params: Any, result: Any, match: str
) -> None:
    registry = Registry()
    registry.add_syscall("echo", echo, Params, Params)
    with pytest.raises(InvalidArgument, match=match):
        registry.add_syscall(name, handler, params, result)
    assert set(registry.syscalls) == {"echo"}


def test_collect_notes_which_plugin_registered_what() -> None:
    registry = collect(plugin_manager("qa,plugin_doubles.policy"))
    assert registry.syscalls["ask"].plugin == "qa"
    assert registry.syscalls["double_record"].plugin == "plugin_doubles.policy"
    assert registry.syscalls["double_record"].timeout == 600.0
    assert registry.policies == {"double_fcfs": policy.DoubleFcfs}
    assert registry.drivers == {"double_torch": policy.double_torch}
    assert registry.current_plugin == ""


def test_a_plugin_that_registers_badly_is_left_out_and_the_others_load() -> None:
    loaded = PluginHost.load("qa,plugin_doubles.bad_register")
    try:
        assert set(loaded.registry.syscalls) == {"ask"}
    finally:
        loaded.threads.shutdown()


# -- arguments and error replies ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "match"),
    [
        ("bad_raise", {"message": 3}, "Expected `str`"),
        ("bad_raise", {"nope": 1}, "unknown field `nope`"),
        ("translate", {"text": "Hi."}, "missing required field `target_lang`"),
        ("translate", {"text": "Hi.", "target_lang": "xx"}, "unknown language code 'xx'"),
        ("translate", {"text": " ", "target_lang": "fr"}, "nothing to translate"),
    ],
)
def test_bad_plugin_arguments_are_einval(
    host: PluginHost, name: str, args: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidArgument, match=match) as caught:
        serve(host, name, msgspec.msgpack.encode(args))
    assert caught.value.code == "EINVAL"


@pytest.mark.parametrize("payload", [b"\x93\x01\x02\x03", b"\xc1", b"", b"\x81\xa4text"])
def test_undecodable_plugin_arguments_are_einval(host: PluginHost, payload: bytes) -> None:
    with pytest.raises(InvalidArgument, match="bad arguments for bad_raise"):
        serve(host, "bad_raise", payload)


def test_an_unknown_plugin_syscall_is_enosys(host: PluginHost) -> None:
    with pytest.raises(NotImplementedSyscall, match="llmosctl plugins"):
        serve(host, "no_such_syscall", b"\x80")


def test_a_raising_handler_is_eio_with_its_message(host: PluginHost) -> None:
    with pytest.raises(PluginError, match="RuntimeError\\('boom'\\)") as caught:
        serve(host, "bad_raise", msgspec.msgpack.encode({"message": "boom"}))
    assert caught.value.code == "EIO" and "plugin_doubles.bad" in caught.value.message


def test_a_wrong_result_type_is_eio(host: PluginHost) -> None:
    with pytest.raises(PluginError, match="returned dict, not Said"):
        serve(host, "bad_wrong_type", b"\x80")


def test_a_handler_that_blocks_past_its_timeout_is_etimedout(host: PluginHost) -> None:
    start = time.monotonic()
    with pytest.raises(TimedOut, match="bad_hang took longer than 1 s"):
        serve(host, "bad_hang", msgspec.msgpack.encode({"seconds": 1.5}))
    assert time.monotonic() - start < 1.4  # answered at the timeout, not when it woke


def test_a_handlers_own_llmos_error_keeps_its_code() -> None:
    loaded = PluginHost.load("translation")
    try:
        # validate() runs before the handler; the handler's own check is the segment cap
        text = " ".join(["Hi."] * 65)
        with pytest.raises(InvalidArgument, match="at most 64 sentences"):
            serve(loaded, "translate", msgspec.msgpack.encode({"text": text, "target_lang": "fr"}))
    finally:
        loaded.threads.shutdown()


def test_plugin_calls_are_requests_of_the_protocol() -> None:
    call = plugin_call("translate", {"text": "Hello", "target_lang": "zh", "glossary": None})
    decoded = decode_request(encode(msgspec.structs.replace(call, id=7)))
    assert isinstance(decoded, Call) and decoded.name == "translate" and decoded.id == 7
    assert msgspec.msgpack.decode(decoded.args) == {"text": "Hello", "target_lang": "zh"}
    assert isinstance(decode_request(encode(Plugins(id=8))), Plugins)
    with pytest.raises(InvalidArgument, match="cannot be sent"):
        plugin_call("translate", {"text": object()})


# -- the process-exit hook ----------------------------------------------------


def host_of(*plugins: object) -> PluginHost:
    """A host over ``plugins`` registered in this order (pluggy calls the last first)."""
    pm = pluggy.PluginManager("llmos")
    pm.add_hookspecs(hookspecs)
    for plugin in plugins:
        pm.register(plugin)
    return PluginHost(pm, Registry())


def test_a_failing_exit_hook_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(policy, "EXITS", [])
    host = host_of(bad, policy)  # the recorder is called first
    with caplog.at_level(logging.ERROR, logger="llmos.kernel"):
        host.process_exit(7, 1000, "smollm2", "stop")
    host.threads.shutdown()
    assert "llmos_process_exit failed" in caplog.text
    [record] = policy.EXITS
    assert record == policy.ExitRecord(pid=7, uid=1000, model="smollm2", status="stop")


def test_a_failing_exit_hook_does_not_silence_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(policy, "EXITS", [])
    host = host_of(policy, bad)  # the failing hook is called first
    host.process_exit(7, 1000, "smollm2", "stop")
    host.threads.shutdown()
    assert [record.pid for record in policy.EXITS] == [7]


# -- the CLI hook ---------------------------------------------------------------


def test_llmos_plugins_limits_the_commands_plugins_add(monkeypatch: pytest.MonkeyPatch) -> None:
    for spec, expected in [("translation,qa", {"translate", "ask"}), ("none", set())]:
        monkeypatch.setenv("LLMOS_PLUGINS", spec)
        group = click.Group("llmosctl")
        add_plugin_commands(group)
        assert set(group.commands) == expected


def test_a_plugin_whose_commands_fail_costs_only_its_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMOS_PLUGINS", "qa,plugin_doubles.bad")
    group = click.Group("llmosctl")
    add_plugin_commands(group)
    assert set(group.commands) == {"ask"}
    assert "plugin plugin_doubles.bad could not add its commands" in capsys.readouterr().err


def test_llmosctl_has_the_builtin_plugins_commands_and_no_others() -> None:
    modules = {
        name: getattr(command.callback, "__module__", "") for name, command in cli.commands.items()
    }
    from_plugins = {name for name, module in modules.items() if module.startswith("llmos.plugins")}
    outside = {name for name, module in modules.items() if not module.startswith("llmos.")}
    assert from_plugins == CLI_COMMANDS
    assert not outside, f"commands of plugins installed outside the suite: {outside}"


# -- the meta-tests: every hook tested and documented ---------------------------


def mentions(text: str, hook: str) -> bool:
    return re.search(rf"\b{hook}\b", text) is not None


def missing_from(hooks: list[str], texts: list[str]) -> list[str]:
    """The hooks no text mentions."""
    return [hook for hook in hooks if not any(mentions(text, hook) for text in texts)]


def undocumented(hooks: list[str], doc: str) -> list[str]:
    """The hooks with no heading of their own in ``doc``."""
    headings = [line for line in doc.splitlines() if line.startswith("#")]
    return [hook for hook in hooks if not any(mentions(h, hook) for h in headings)]


def test_the_hooks_found_are_the_ones_the_plugin_manager_has() -> None:
    pm = plugin_manager("none")
    assert hook_names() == sorted(h for h in vars(pm.hook) if h.startswith("llmos_"))
    assert len(hook_names()) >= 6


def test_every_hook_has_a_test() -> None:
    texts = [path.read_text() for path in sorted(TESTS.glob("test_*.py"))]
    assert missing_from(hook_names(), texts) == []


def test_every_hook_is_documented() -> None:
    assert undocumented(hook_names(), DOCS.read_text()) == []


def test_the_meta_tests_can_fail() -> None:
    hooks = ["llmos_register_syscalls", "llmos_brand_new"]
    assert missing_from(hooks, ["def test(): llmos_register_syscalls"]) == ["llmos_brand_new"]
    assert missing_from(["llmos_cli"], ["llmos_cli_extra"]) == ["llmos_cli"]
    doc = "# Guide\nllmos_brand_new in prose\n## `llmos_register_syscalls`\n"
    assert undocumented(hooks, doc) == ["llmos_brand_new"]
