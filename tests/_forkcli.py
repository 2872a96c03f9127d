"""``python -m ganforge ...`` for the tests, forked from a process that has imported torch already.

Every command the suite runs in a fresh process (about 160 of them) paid for importing torch,
torch._dynamo (which torch.optim and torchvision import) and torchvision again: 3.5 of its 4 s
on a 2-core CPU, a tenth of the suite's time. The tests want a fresh ganforge in a process of its
own, not a fresh torch, so one process per pytest worker (the zygote) imports the libraries every
command imports, and nothing of ganforge, and forks a child per command. The child takes the
command's environment, working directory, arguments and standard streams, imports ganforge
afresh and runs it as ``python -m ganforge`` would: its own exit code, a traceback on a crash,
atexit handlers and non-daemon threads ended as at interpreter exit.

What a fork cannot give a child, it does not pretend to: a command whose environment sets
something Python or torch read at start-up otherwise than the zygote's (PYTHON* variables other
than PYTHONPATH, OMP_NUM_THREADS, ...) runs in a fresh process instead, and
GANFORGE_TEST_FRESH=1 runs every command so. Commands from several threads at once, or after
the zygote died, run fresh too.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# Imported by nearly every command, and costly: these, and nothing of ganforge.
PRELOAD = ("torch", "torch._dynamo", "torchvision", "numpy", "PIL.Image", "yaml", "safetensors.torch",
           "matplotlib.figure", "matplotlib.backends.backend_agg", "torch.utils.tensorboard")

# Environment variables a fresh interpreter or torch reads at start-up, which a forked child
# cannot take: a command that sets one of them differently runs in a fresh process.
_STARTUP = ("OMP_NUM_THREADS", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONWARNINGS", "PYTHONHASHSEED",
            "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONUNBUFFERED",
            "PYTHONOPTIMIZE", "PYTHONDEVMODE", "PYTHONFAULTHANDLER", "PYTHONMALLOC", "PYTHONNOUSERSITE",
            "PYTHONSAFEPATH", "PYTHONTRACEMALLOC", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
            "OMP_WAIT_POLICY", "KMP_AFFINITY", "LD_PRELOAD", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES",
            "MPLBACKEND", "MPLCONFIGDIR", "TORCH_HOME", "TORCHDYNAMO_DISABLE", "TORCH_LOGS")

_ZYGOTE = r'''
import atexit, importlib, io, json, os, runpy, signal, sys, threading, traceback

for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
base_path = [p for p in sys.path if p not in ("", os.getcwd())]
requests, replies = sys.stdin.buffer, sys.stdout.buffer


def run(req):
    fds = [os.open(req["stdin"] or os.devnull, os.O_RDONLY)]
    fds += [os.open(req[k], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) for k in ("stdout", "stderr")]
    for target, fd in enumerate(fds):  # the zygote's pipes (0, 1) are replaced: the child keeps none
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(req["env"])
    os.chdir(req["cwd"])
    extra = [p for p in req["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [req["cwd"], *extra, *base_path]  # as `python -m` builds it
    encoding = req["env"].get("PYTHONIOENCODING") or "utf-8"
    sys.stdin = io.TextIOWrapper(io.open(0, "rb", closefd=False), encoding=encoding)
    sys.stdout = io.TextIOWrapper(io.open(1, "wb", closefd=False), encoding=encoding)
    sys.stderr = io.TextIOWrapper(io.open(2, "wb", closefd=False), encoding=encoding,
                                  errors="backslashreplace", line_buffering=True)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    sys.argv = ["ganforge", *req["args"]]
    code, interrupted = 0, False
    try:
        runpy.run_module("ganforge", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:  # Python ends so by SIGINT itself: the parent sees -2
        traceback.print_exc()
        interrupted = True
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        threading._shutdown()  # non-daemon threads end first, as at interpreter exit
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        if interrupted:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        os._exit(code & 0xFF)


for line in requests:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            run(req)
        finally:
            os._exit(70)
    replies.write((json.dumps({"pid": pid}) + "\n").encode())
    replies.flush()
    _, status = os.waitpid(pid, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    replies.write((json.dumps({"code": code}) + "\n").encode())
    replies.flush()
'''


class NotStarted(Exception):
    """The zygote could not start the command (it is gone)."""


class Zygote:
    """One per process that runs commands (a pytest worker); started at its first command."""

    def __init__(self):
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.env: dict[str, str] | None = None
        self.dead = False

    def _start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of ganforge
        self.env = env
        # unbuffered replies: select() must see each line, which a buffered reader could hold back
        self.proc = subprocess.Popen([sys.executable, "-c", _ZYGOTE, json.dumps(PRELOAD)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, cwd=tempfile.gettempdir(), bufsize=0)

    def can_run(self, env: dict[str, str]) -> bool:
        if self.dead or os.environ.get("GANFORGE_TEST_FRESH") == "1":
            return False
        started = self.env if self.env is not None else os.environ
        return all(env.get(k) == started.get(k) for k in _STARTUP)

    def _read(self, deadline: float | None) -> dict | None:
        out = self.proc.stdout
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not select.select([out], [], [], wait)[0]:
            return None
        line = out.readline()
        if not line:
            raise EOFError("the zygote exited")
        return json.loads(line)

    def run(self, args: list[str], env: dict[str, str], cwd: str | None, input: str | None,
            timeout: float | None) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory(prefix="gf-cli-") as tmp:
            files = {k: str(Path(tmp) / k) for k in ("stdin", "stdout", "stderr")}
            if input is not None:
                Path(files["stdin"]).write_text(input)
            req = {"args": args, "env": env, "cwd": os.path.abspath(cwd or os.getcwd()),
                   "stdin": files["stdin"] if input is not None else None,
                   "stdout": files["stdout"], "stderr": files["stderr"]}
            try:
                if self.proc is None:
                    self._start()
                self.proc.stdin.write((json.dumps(req) + "\n").encode())
                self.proc.stdin.flush()
                pid = self._read(None)["pid"]
            except (EOFError, OSError) as exc:  # nothing ran: the caller runs it fresh
                raise NotStarted from exc
            deadline = None if timeout is None else time.monotonic() + timeout
            reply = self._read(deadline)
            timed_out = reply is None
            if timed_out:
                os.kill(pid, 9)
                reply = self._read(None)
            stdout, stderr = (Path(files[k]).read_text(errors="replace") if Path(files[k]).exists() else ""
                              for k in ("stdout", "stderr"))
        cmd = [sys.executable, "-m", "ganforge", *args]
        if timed_out:
            raise subprocess.TimeoutExpired(cmd, timeout, output=stdout, stderr=stderr)
        return subprocess.CompletedProcess(cmd, reply["code"], stdout, stderr)


    def stop(self) -> None:
        """End the zygote (its loop ends at the end of its input) and close the pipes to it."""
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.stdout.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


_ZYGOTE_OF_THIS_PROCESS = Zygote()
atexit.register(lambda: _ZYGOTE_OF_THIS_PROCESS.stop())  # the one in use then (a test may swap it)


def run_ganforge(args: list[str], env: dict[str, str], *, cwd=None, input: str | None = None,
                 timeout: float | None = None) -> subprocess.CompletedProcess:
    """``python -m ganforge ARGS`` with ``env`` (the whole environment), as subprocess.run with
    capture_output=True, text=True would give it: forked from the zygote where that is the same,
    else in a fresh process."""
    zygote = _ZYGOTE_OF_THIS_PROCESS
    if zygote.can_run(env) and zygote.lock.acquire(blocking=False):
        try:
            return zygote.run(args, env, None if cwd is None else str(cwd), input, timeout)
        except NotStarted:
            zygote.dead = True  # the zygote is gone: this and every later command run fresh
        finally:
            zygote.lock.release()
    return subprocess.run([sys.executable, "-m", "ganforge", *args], env=env, cwd=cwd, input=input,
                          capture_output=True, text=True, timeout=timeout)
