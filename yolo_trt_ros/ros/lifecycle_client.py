"""Synchronous client for a lifecycle node's ``<node>/change_state`` and ``<node>/get_state``
services.

Used by the tests and the demo. The client spins itself while it waits, so do not add it to another
executor.
"""

from __future__ import annotations

import sys
from typing import Any

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.client import Client
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class LifecycleError(RuntimeError):
    """A lifecycle service did not answer in time."""


class LifecycleClient(Node):
    """Drives the lifecycle of node ``target`` (a name such as ``yolo_tracker`` or
    ``/ns/yolo_tracker``)."""

    def __init__(
        self, target: str, node_name: str | None = None, timeout_s: float = 10.0, **kwargs: Any
    ) -> None:
        super().__init__(
            node_name or f"lifecycle_client_{target.strip('/').replace('/', '_')}", **kwargs
        )
        self.target = target
        self.timeout_s = timeout_s
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self)
        self._change_state: Client[Any, Any] = self.create_client(
            ChangeState, f"{target}/change_state"
        )
        self._get_state: Client[Any, Any] = self.create_client(GetState, f"{target}/get_state")

    def change_state(self, transition: str | int, timeout_s: float | None = None) -> bool:
        """Trigger a transition by label (``configure``, ``activate``, ``deactivate``, ``cleanup``,
        ``shutdown``) or by lifecycle_msgs/Transition id; True when the node reports success."""
        request = ChangeState.Request()
        if isinstance(transition, str):
            request.transition = Transition(label=transition)
        else:
            request.transition = Transition(id=transition)
        response = self._call(self._change_state, request, timeout_s)
        return bool(response.success)

    def get_state(self, timeout_s: float | None = None) -> str:
        """The target's current state label (``unconfigured``, ``inactive``, ``active``,
        ``finalized``...)."""
        return str(self._call(self._get_state, GetState.Request(), timeout_s).current_state.label)

    def wait_for_services(self, timeout_s: float | None = None) -> bool:
        """True once both services are available (the target node is up)."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        return self._change_state.wait_for_service(timeout) and self._get_state.wait_for_service(
            timeout
        )

    def _call(self, client: Client, request: Any, timeout_s: float | None) -> Any:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        if not client.wait_for_service(timeout):
            raise LifecycleError(f"service {client.srv_name} not available after {timeout:.1f} s")
        future = client.call_async(request)
        self._executor.spin_until_future_complete(future, timeout)
        if not future.done():
            client.remove_pending_request(future)
            raise LifecycleError(
                f"service {client.srv_name} did not answer within {timeout:.1f} s"
            )
        return future.result()

    def destroy_node(self) -> None:
        self._executor.remove_node(self)
        self._executor.shutdown()
        super().destroy_node()


def main() -> None:
    """``python -m yolo_trt_ros.ros.lifecycle_client <node> <transition|get>``: one call, exit
    status 0 on success."""
    if len(sys.argv) != 3:
        sys.exit(
            "usage: python -m yolo_trt_ros.ros.lifecycle_client NODE "
            "{configure,activate,deactivate,cleanup,"
            "shutdown,get}"
        )
    rclpy.init()
    client = LifecycleClient(sys.argv[1])
    try:
        if sys.argv[2] == "get":
            print(client.get_state())
            ok = True
        else:
            ok = client.change_state(sys.argv[2])
            print(f"{sys.argv[2]}: {'ok' if ok else 'FAILED'} -> {client.get_state()}")
    except LifecycleError as exc:
        sys.exit(str(exc))
    finally:
        client.destroy_node()
        rclpy.try_shutdown()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
