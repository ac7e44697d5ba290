"""Grad modes: no_grad, enable_grad, set_grad_enabled, inference_mode.

The flags live in `vibetensor.dispatch.local` (a threading.local the dispatcher reads on every
call), so each mode is per thread, as in torch. Every mode is a context manager and a decorator
(of functions and generators); set_grad_enabled also takes effect when merely called.
"""
import functools
import inspect

from vibetensor.dispatch import local


def is_grad_enabled():
    return local.grad_enabled


def is_inference_mode_enabled():
    return local.inference_mode


def _set_grad_enabled(mode):
    local.grad_enabled = bool(mode)


class _DecoratorContextManager:
    """A context manager that is also a decorator: each call of the decorated function (or each
    step of a decorated generator) runs inside a fresh copy of the manager."""

    def __call__(self, func):
        if inspect.isclass(func):
            raise RuntimeError("Decorating classes is not supported.")
        if inspect.isgeneratorfunction(func):
            return self._wrap_generator(func)

        @functools.wraps(func)
        def decorate_context(*args, **kwargs):
            with self.clone():
                return func(*args, **kwargs)
        return decorate_context

    def _wrap_generator(self, func):
        @functools.wraps(func)
        def generator_context(*args, **kwargs):
            gen = func(*args, **kwargs)
            try:
                with self.clone():
                    response = gen.send(None)
                while True:
                    try:
                        request = yield response
                    except GeneratorExit:
                        with self.clone():
                            gen.close()
                        raise
                    except BaseException as e:  # forward throw() into the generator, in the mode
                        with self.clone():
                            response = gen.throw(e)
                    else:
                        with self.clone():
                            response = gen.send(request)
            except StopIteration as e:
                return e.value
        return generator_context

    def clone(self):
        return self.__class__()


class _NoParamDecoratorContextManager(_DecoratorContextManager):
    """Allows `@no_grad` as well as `@no_grad()`."""

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        return cls()(orig_func)


class no_grad(_NoParamDecoratorContextManager):
    """Ops run inside record no graph: their results do not require grad."""

    def __enter__(self):
        self.prev = local.grad_enabled
        local.grad_enabled = False

    def __exit__(self, *exc):
        local.grad_enabled = self.prev


class enable_grad(_NoParamDecoratorContextManager):
    def __enter__(self):
        self.prev = local.grad_enabled
        local.grad_enabled = True

    def __exit__(self, *exc):
        local.grad_enabled = self.prev


class set_grad_enabled(_DecoratorContextManager):
    """set_grad_enabled(mode): sets the mode at once (so it works as a plain function call), and
    restores the previous mode when used as a context manager and exited."""

    def __init__(self, mode):
        self.prev = local.grad_enabled
        self.mode = bool(mode)
        local.grad_enabled = self.mode

    def __call__(self, func):
        local.grad_enabled = self.prev  # as a decorator it must not change the mode now
        return super().__call__(func)

    def __enter__(self):
        local.grad_enabled = self.mode

    def __exit__(self, *exc):
        local.grad_enabled = self.prev

    def clone(self):
        return self.__class__(self.mode)

    def __repr__(self):
        return f"torch.autograd.grad_mode.set_grad_enabled(mode={self.mode})"


class inference_mode(_DecoratorContextManager):
    """Like no_grad, and flags the thread as in inference mode (torch.is_inference_mode_enabled).
    Deviation from torch: tensors made here are ordinary tensors, not 'inference tensors'."""

    def __new__(cls, mode=True):
        if isinstance(mode, bool):
            return super().__new__(cls)
        return cls()(mode)  # used as a bare decorator: @inference_mode

    def __init__(self, mode=True):
        self.mode = mode

    def __enter__(self):
        self.prev = (local.grad_enabled, local.inference_mode)
        if self.mode:
            local.grad_enabled, local.inference_mode = False, True
        else:
            local.inference_mode = False

    def __exit__(self, *exc):
        local.grad_enabled, local.inference_mode = self.prev

    def clone(self):
        return self.__class__(self.mode)
