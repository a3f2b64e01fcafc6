"""The Jobs policy of docs/aws.md allows every topic the jobs role uses: each request
it publishes and each filter the link subscribes for it (aws/jobs_topics.py), so a
device with that policy never has a subscription refused."""

from chariotd.aws import jobs_topics
from test_docs import THING, allowed, policies


def test_the_policy_allows_every_jobs_request_and_subscription():
    extra = [policies()["jobs-defender"]]
    p = jobs_topics.prefix(THING)
    for topic in (f"{p}/{jobs_topics.START_NEXT}", f"{p}/job-1/{jobs_topics.UPDATE}",
                  f"{p}/job-1/{jobs_topics.DESCRIBE}"):
        assert allowed(extra, THING, "iot:Publish", f"topic/{topic}"), topic
    for topic_filter in jobs_topics.subscriptions(THING):
        assert allowed(extra, THING, "iot:Subscribe", f"topicfilter/{topic_filter}"), \
            topic_filter
        topic = topic_filter.replace("+", "job-1")
        assert allowed(extra, THING, "iot:Receive", f"topic/{topic}"), topic
