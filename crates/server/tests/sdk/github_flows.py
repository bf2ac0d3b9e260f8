"""PyGithub, unchanged, against `sbx mock` of GitHub's published OpenAPI
document (api.github.com): open an issue, read it back by number, comment,
edit it through the `url` it answered, and page through the repository's
issues by `Link` headers. PyGithub refuses links to a host other than its
base URL's, so every link must lead back into the sandbox.
Usage: github_flows.py BASE_URL"""

import sys

from github import Auth, Github, GithubException

BASE = sys.argv[1]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


github = Github(base_url=BASE, auth=Auth.Token("sk_test_sdk"), per_page=2, retry=None)
repo = github.get_repo("octo-org/hello-world")
check(repo.url.startswith(BASE), f"the repository's url is in the sandbox: {repo.url}")

issue = repo.create_issue(title="Found a bug", body="It breaks on Tuesdays")
check(issue.title == "Found a bug", f"title kept: {issue.title}")
check(issue.body == "It breaks on Tuesdays", f"body kept: {issue.body}")
check(issue.url.startswith(BASE), f"the issue's url is in the sandbox: {issue.url}")

again = repo.get_issue(issue.number)
check(again.number == issue.number, "the issue reads back by its number")
check(again.title == "Found a bug", f"its title reads back: {again.title}")

comment = issue.create_comment("Reproduced.")
check(comment.body == "Reproduced.", f"comment kept: {comment.body}")

issue.edit(title="Found a bug on Tuesdays")
check(issue.title == "Found a bug on Tuesdays", f"edited through its url: {issue.title}")
check(repo.get_issue(issue.number).title == "Found a bug on Tuesdays", "the edit reads back")

for index in range(4):
    repo.create_issue(title=f"Issue {index}")
titles = [i.title for i in repo.get_issues(state="all")]
check(len(titles) == 5, f"paging by Link headers sees every issue once: {titles}")

try:
    repo.get_issue(999999)
    raise AssertionError("an unknown issue is a 404")
except GithubException as error:
    check(error.status == 404, f"404: {error.status}")
print("github flows: ok")
