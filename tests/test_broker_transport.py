"""The broker's Redis channel (apps/core/broker_transport.py) shares one redis-py client, and
builds a fresh one once kombu replaces a lost connection's pool."""

from __future__ import annotations

from kombu import Queue

from apps.core.broker_transport import Channel
from assistants_project.celery import app


def test_the_broker_channel_shares_one_client_until_its_pool_is_replaced(stack):
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(channel, Channel)
        first = channel._create_client()
        assert channel._create_client() is first

        queue = Queue("broker-transport-test", channel=channel, auto_delete=True)
        queue.declare()
        queue.purge()
        producer = connection.Producer(channel)
        producer.publish({"n": 1}, routing_key=queue.name, declare=[queue])
        assert queue.get(no_ack=True).payload == {"n": 1}

        channel._disconnect_pools()  # what kombu does after it lost the connection
        second = channel._create_client()
        assert second is not first and second.connection_pool is channel.pool
        producer.publish({"n": 2}, routing_key=queue.name)
        assert queue.get(no_ack=True).payload == {"n": 2}
        queue.delete()
