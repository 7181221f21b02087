"""Short, plainly worded texts whose label no reader would doubt: what a default model must get right
in every calling mode (single-label, one label at a time, multi-label). Written for this suite;
none is a demo text or comes from a training or evaluation source."""

from __future__ import annotations

from typing import Any

TOPICS: dict[str, list[str]] = {
    "sports": [
        "The goalkeeper saved a penalty in the last minute of the match.",
        "She won the marathon in under three hours.",
        "Our basketball team lost the final by two points.",
        "He hit a home run in the ninth inning.",
        "The tennis player served an ace to win the set.",
        "The swimmer broke the world record in the 100 metres.",
        "Fans cheered as the cyclist crossed the finish line first.",
    ],
    "politics": [
        "The senator voted against the new immigration bill.",
        "Voters went to the polls to elect a new president.",
        "The prime minister resigned after losing a vote of confidence.",
        "The opposition party promised lower taxes in its campaign.",
        "Parliament debated the law on election funding for hours.",
        "The mayor announced she will run for governor next year.",
        "The two countries signed a peace treaty at the summit.",
    ],
    "food": [
        "Chop the onions and fry them in butter until soft.",
        "This pizza has mozzarella, basil and fresh tomatoes.",
        "Add a pinch of salt to the boiling pasta water.",
        "The chocolate cake needs two cups of sugar and four eggs.",
        "We grilled salmon with lemon and garlic for dinner.",
        "Stir the soup and let it simmer for twenty minutes.",
        "She baked fresh bread and served it with olive oil.",
    ],
    "technology": [
        "The new laptop has a faster processor and more memory.",
        "Update your phone to get the latest security patch.",
        "The software crashed when I opened a large file.",
        "Engineers built a smaller chip that uses less power.",
        "This app lets you back up your photos to the cloud.",
        "The router restarts whenever the wifi signal drops.",
        "Programmers fixed the bug in the database code.",
    ],
    "weather": [
        "Heavy rain and strong winds are expected tomorrow.",
        "It snowed all night and the roads are icy.",
        "The forecast says sunny skies and 30 degrees this weekend.",
        "A thunderstorm knocked out power across the town.",
        "Thick fog covered the valley this morning.",
        "Temperatures will drop below freezing tonight.",
        "A hurricane is moving toward the coast.",
    ],
    "health": [
        "The doctor prescribed antibiotics for the infection.",
        "Regular exercise lowers the risk of heart disease.",
        "She had a fever and a sore throat for three days.",
        "The hospital opened a new ward for cancer patients.",
        "Get a flu vaccine before the winter season starts.",
        "Drinking enough water helps prevent headaches.",
        "The nurse checked his blood pressure and pulse.",
    ],
    "music": [
        "The band played their new song at the concert.",
        "She practises the piano for an hour every day.",
        "The orchestra performed a symphony by Beethoven.",
        "His guitar solo was the best part of the album.",
        "The singer hit the high note in the last chorus.",
        "They listened to jazz records all evening.",
        "The drummer kept a steady beat through the whole show.",
    ],
    "travel": [
        "We booked a flight to Rome and a hotel near the beach.",
        "Don't forget your passport when you go abroad.",
        "The train to the mountains leaves at seven in the morning.",
        "Tourists queued to visit the famous museum.",
        "We rented a car and drove along the coast for a week.",
        "Our luggage was lost at the airport on the way to Tokyo.",
        "The cruise ship stopped at three islands.",
    ],
    "money": [
        "The bank raised interest rates on savings accounts.",
        "I paid off my credit card debt this month.",
        "Stock prices fell sharply after the report.",
        "She saves part of her salary every month for retirement.",
        "The loan has a fixed monthly payment for five years.",
        "Inflation made groceries more expensive this year.",
        "He invested his bonus in an index fund.",
    ],
}

SENTIMENT: dict[str, list[str]] = {
    "positive": [
        "I loved this movie, the acting was wonderful.",
        "The service was friendly and the food was delicious.",
        "What a great day, everything went perfectly.",
        "This is the best phone I have ever owned.",
        "The hotel staff were kind and the room was spotless.",
        "I'm so happy with how the project turned out.",
    ],
    "negative": [
        "The movie was boring and far too long.",
        "The food was cold and the waiter was rude.",
        "What a terrible day, nothing went right.",
        "This phone broke after a week, a waste of money.",
        "The room was dirty and the staff ignored us.",
        "I'm really disappointed with the result.",
    ],
}


def cases(groups: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(text, label) for every text of `groups`."""
    return [(text, label) for label, texts in groups.items() for text in texts]


def measure(clf: Any) -> dict[str, float]:
    """The share of obvious cases a classifier gets right in every calling mode.

    - single_label: the top label among all topics is the text's own;
    - one_label_own_at_least_half / one_label_unrelated_under_half: one candidate, multi-label:
      its own topic scores >= 0.5, an unrelated one (the next topic in the list) < 0.5;
    - multi_label_exact_set: multi-label among all topics, at the model's default threshold,
      predicts exactly its own topic;
    - sentiment_single_label: positive or negative, the top label is right.
    """
    topics = list(TOPICS)
    topic_cases = cases(TOPICS)
    texts = [text for text, _ in topic_cases]
    gold = [label for _, label in topic_cases]
    single = clf.classify(texts, topics, multi_label=False)
    own = clf.classify(texts, [[label] for label in gold])
    unrelated_labels = [topics[(topics.index(label) + 1) % len(topics)] for label in gold]
    unrelated = clf.classify(texts, [[label] for label in unrelated_labels])
    multi = clf.classify(texts, topics)
    sentiment_cases = cases(SENTIMENT)
    sentiment = clf.classify([t for t, _ in sentiment_cases], list(SENTIMENT), multi_label=False)
    n = len(texts)
    return {
        "single_label": sum(r.labels == [g] for r, g in zip(single, gold, strict=True)) / n,
        "one_label_own_at_least_half": sum(r.scores[g] >= 0.5 for r, g in zip(own, gold, strict=True)) / n,
        "one_label_unrelated_under_half": sum(
            r.scores[u] < 0.5 for r, u in zip(unrelated, unrelated_labels, strict=True)
        )
        / n,
        "multi_label_exact_set": sum(r.labels == [g] for r, g in zip(multi, gold, strict=True)) / n,
        "sentiment_single_label": sum(
            r.labels == [g] for r, (_, g) in zip(sentiment, sentiment_cases, strict=True)
        )
        / len(sentiment_cases),
    }
