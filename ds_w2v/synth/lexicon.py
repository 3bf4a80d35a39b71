"""Word lists and English inflection for the sentence grammar (:mod:`ds_w2v.synth.grammar`).

Why a hand-written lexicon: the demo corpus must be built offline, and an ASR model trained on
it should meet a vocabulary of realistic size (about 1,300 word forms here, 2,000+ once inflected)
rather than a handful of words repeated. Words are grouped by the role they can play, so that
the templates produce sentences that are mostly sensible ("The baker sold a warm loaf"), not
word salad. Every word is plain lower-case ASCII that espeak pronounces from its dictionary;
numbers and abbreviations are avoided because their spoken form differs from their spelling.
"""
from __future__ import annotations


def _words(block: str) -> tuple[str, ...]:
    return tuple(block.split())


# -- nouns by role -------------------------------------------------------------------------
PEOPLE = _words("""
    baker farmer teacher doctor nurse pilot sailor driver painter writer singer dancer
    student lawyer judge soldier officer captain mayor clerk cashier waiter chef gardener
    plumber carpenter builder miner fisherman hunter shepherd tailor barber banker
    merchant grocer butcher librarian scientist engineer professor reporter editor actor
    musician drummer guitarist poet sculptor architect mechanic electrician janitor guard
    detective thief stranger neighbor visitor tourist traveler passenger customer client
    patient child boy girl baby woman man grandmother grandfather uncle aunt cousin nephew
    niece brother sister mother father husband wife friend partner coach player referee
    runner swimmer climber king queen prince princess knight wizard clown juggler magician
    priest monk nun chairman secretary manager owner tenant landlord porter courier
    messenger ranger trucker cowboy explorer inventor surgeon dentist pharmacist vet
""")

ANIMALS = _words("""
    dog cat horse cow pig sheep goat rabbit mouse rat fox wolf bear deer lion tiger
    elephant monkey donkey mule camel zebra giraffe kangaroo squirrel owl eagle hawk crow
    duck goose hen rooster turkey parrot pigeon sparrow swan frog toad snake turtle lizard
    fish shark whale dolphin seal otter beaver badger hedgehog bee wasp spider ant beetle
    moth butterfly puppy kitten calf lamb pony
""")

THINGS = _words("""
    book letter card map key lamp chair table bench desk bottle cup glass plate bowl
    spoon fork knife pan pot kettle basket bucket box bag suitcase wallet purse coin
    ring watch clock radio camera phone ticket envelope parcel package hammer saw drill
    ladder rope chain wire brush broom mop towel blanket pillow sheet curtain carpet rug
    mirror picture painting poster candle match lantern torch umbrella coat jacket sweater
    shirt skirt dress hat cap scarf glove boot shoe sock belt button needle thread ribbon
    pencil pen marker notebook folder envelope stamp magazine newspaper diary calendar
    guitar piano violin drum flute trumpet whistle bell ball kite doll puzzle balloon
    bicycle wagon sled boat canoe raft truck tractor trailer engine wheel tire
    shovel rake axe bolt screw nail jar tray vase statue helmet shield sword
    arrow bow saddle fence gate barrel crate sack net trap cage tent flag banner compass
""")

FOODS = _words("""
    bread cake pie soup stew salad sandwich cheese butter milk cream yogurt egg apple
    pear peach plum cherry grape lemon orange banana melon berry carrot potato onion
    tomato pepper bean pea cabbage lettuce cucumber pumpkin corn rice noodle biscuit cookie
    muffin pancake waffle honey jam sugar salt flour oatmeal cereal chicken bacon sausage
    ham steak roast fish shrimp lobster chocolate candy toffee pudding custard tart
    pickle olive mushroom garlic ginger almond walnut peanut coconut lime grapefruit
    juice tea coffee cocoa lemonade
""")

PLACES = _words("""
    kitchen garden cellar attic garage barn stable shed porch yard field meadow forest
    orchard valley hill mountain river lake pond harbor beach island village town city
    market station airport library museum theater hospital school church chapel castle
    palace tower bridge tunnel road street lane square park playground stadium factory
    mill warehouse office bank shop bakery cafe restaurant hotel inn farm ranch camp
    desert jungle swamp canyon cave cliff shore dock pier lighthouse prison courthouse
    classroom hallway basement bedroom bathroom studio workshop laboratory greenhouse
""")

ABSTRACT = _words("""
    idea plan story joke song poem question answer problem mistake secret promise rumor
    lesson message reason choice decision argument warning report rule law price bill
    debt reward prize gift surprise chance habit dream memory plot trick puzzle riddle
""")

WEATHER = _words("""
    rain snow wind fog storm thunder frost hail sunshine heat cold
""")

# irregular or unusual plurals; everything else follows the spelling rules in plural()
_PLURALS = {
    "man": "men", "woman": "women", "child": "children", "mouse": "mice", "foot": "feet",
    "tooth": "teeth", "goose": "geese", "sheep": "sheep", "deer": "deer", "fish": "fish",
    "knife": "knives", "wife": "wives", "wolf": "wolves", "calf": "calves", "loaf": "loaves",
    "leaf": "leaves", "shelf": "shelves", "thief": "thieves", "half": "halves",
    "fisherman": "fishermen", "chairman": "chairmen", "person": "people", "ox": "oxen",
    "potato": "potatoes", "tomato": "tomatoes", "hero": "heroes", "bus": "buses",
    "chief": "chiefs", "roof": "roofs", "shrimp": "shrimp", "corn": "corn",
}

# -- adjectives by what they sensibly describe ----------------------------------------------
ADJ_GENERAL = _words("""
    old new young small big large tiny huge little tall short long wide narrow heavy light
    bright dark clean dirty quiet loud strange famous ordinary rare common lovely ugly
    pretty handsome fancy plain simple fine rough smooth soft hard warm cool cold hot wet
    dry empty full broken shiny dull rusty dusty muddy sturdy fragile precious cheap
    expensive familiar curious odd lucky unlucky proper perfect awful splendid gentle
    silent noisy busy lazy eager patient careful careless clever foolish brave timid
    proud humble polite rude cheerful gloomy happy sad angry calm tired sleepy hungry
    thirsty grumpy friendly lonely nervous anxious honest wicked kind cruel generous
    greedy wise silly serious jolly merry weary sick healthy strong weak bold shy
    ancient modern foreign local distant nearby secret hidden missing spare extra
    favorite only usual special
""")

ADJ_THING = _words("""
    red blue green yellow orange purple brown black white gray golden silver pink
    wooden metal plastic leather woolen cotton glass paper stone iron copper brass
    striped spotted checkered painted polished folded torn bent cracked square round
    flat sharp blunt sticky greasy oily shabby elegant antique
""")

ADJ_FOOD = _words("""
    fresh stale ripe sweet sour bitter salty spicy crisp crunchy juicy tender tough
    delicious tasty bland frozen boiled baked fried roasted sliced chopped warm cold
    creamy buttery hot homemade
""")

ADV = _words("""
    quickly slowly quietly loudly carefully carelessly gently roughly happily sadly
    angrily calmly eagerly patiently nervously proudly politely rudely bravely shyly
    suddenly finally easily hardly nearly barely secretly openly softly firmly neatly
    badly well early late together alone again twice often seldom rarely always
    never usually sometimes
""")

NAMES_MALE = _words("""
    Adam Alan Albert Andrew Arthur Barry Ben Bill Bob Brian Carl Charles Chris Colin
    Dan David Dennis Derek Donald Douglas Edward Eric Frank Fred George Gordon Greg
    Harold Harry Henry Ian Jack Jacob James Jason Jeff Jim Joe John Keith Ken Kevin
    Larry Leo Lewis Mark Martin Matthew Michael Neil Nick Oliver Oscar Patrick Paul
    Peter Philip Ray Richard Robert Roger Ron Sam Scott Simon Steve Ted Thomas Tim
    Tom Tony Victor Walter Will
""")

NAMES_FEMALE = _words("""
    Alice Amy Angela Anna Anne Barbara Betty Carol Catherine Clara Diana Donna Dorothy
    Edith Ellen Emily Emma Eva Fiona Grace Hannah Helen Irene Jane Janet Jean Jenny
    Joan Julia Karen Kate Laura Linda Lisa Lucy Margaret Maria Martha Mary Megan
    Molly Nancy Nora Olivia Pamela Paula Rachel Rita Rose Ruth Sally Sarah Sophie
    Susan Tina Vera Wendy
""")

WEEKDAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
MONTHS = _words("January February March April May June July August September October November December")

TIMES = (
    "yesterday", "today", "tomorrow", "tonight", "last night", "this morning", "this evening",
    "every morning", "every evening", "every week", "last week", "next week", "last year",
    "next year", "at noon", "at midnight", "at dawn", "at dusk", "before lunch", "after dinner",
    "after school", "before breakfast", "in the morning", "in the afternoon", "in the evening",
    "all day", "all night", "for an hour", "for a while", "right away", "soon", "later",
    "once a month", "in the spring", "in the summer", "in the autumn", "in the winter",
    "during the storm", "after the game", "before the party",
)

PREPS_PLACE = _words("in near behind beside outside inside across through past under above behind")

# -- verbs -----------------------------------------------------------------------------------
# Transitive verbs by the kind of object they take. Irregular past forms are in _PAST and
# consonant doubling (stop -> stopped, stopping) in _DOUBLE.
V_THING = _words("""
    carry find lose buy sell fix break paint wash clean hide drop pick lift hold move
    push pull drag throw catch borrow lend open close fold wrap mend polish sweep fill
    empty pack unpack bring fetch take keep leave give send steal hang sort count check
    deliver repair measure weigh touch shake kick roll pack stack load unload return
    trade share show hand order collect bury dig guard inspect examine notice spot
""")

V_FOOD = _words("""
    eat cook bake taste slice chop boil fry roast serve share buy sell grow pick peel
    mash stir mix pour spill order finish swallow smell steal wrap freeze heat
""")

V_PERSON = _words("""
    meet call visit help thank follow chase greet warn blame praise hire fire pay teach
    invite remind join tease scold trust doubt admire ignore interview rescue hug kiss
    push ask answer fetch watch hear see phone marry recognize forgive
""")

V_ANIMAL = _words("""
    feed chase catch watch follow frighten tame train ride wash brush walk find lose
    hear see photograph rescue count
""")

V_ABSTRACT = _words("""
    tell explain forget remember hear share repeat write read solve discuss ignore
    accept reject keep break question change follow
""")

V_INTRANS = _words("""
    laugh cry smile sing dance sleep wait arrive leave stay return rest work play
    shout whisper cough sneeze yawn shiver sigh run walk jump swim climb fall hurry
    travel listen complain agree argue pray vanish appear scream grin nod wave
    kneel stumble wander
""")

_PAST = {
    "break": "broke", "bring": "brought", "buy": "bought", "catch": "caught", "dig": "dug",
    "eat": "ate", "fall": "fell", "feed": "fed", "find": "found", "forget": "forgot",
    "forgive": "forgave", "freeze": "froze", "fry": "fried", "give": "gave", "grow": "grew",
    "hang": "hung", "hear": "heard", "hide": "hid", "hold": "held", "keep": "kept",
    "kneel": "knelt", "leave": "left", "lend": "lent", "lose": "lost", "meet": "met",
    "pay": "paid", "read": "read", "ride": "rode", "run": "ran", "see": "saw",
    "sell": "sold", "send": "sent", "shake": "shook", "sing": "sang", "sleep": "slept",
    "spill": "spilled", "steal": "stole", "sweep": "swept", "swim": "swam", "take": "took",
    "teach": "taught", "tell": "told", "think": "thought", "throw": "threw",
    "write": "wrote", "say": "said", "make": "made",
}

# final consonant doubles before -ed/-ing (stressed closed final syllable)
_DOUBLE = set(_words("""
    drop stop chop grin nod mop dig stir shop plan trap hug wrap pat rub drag
    forget spot run swim
    grab step slip admit regret jog sob tap clap beg hop ship
"""))

# mass nouns keep their form in the plural slot ("some bread", "fresh butter")
MASS_NOUNS = frozenset(_words("""
    bread butter milk cream yogurt rice honey jam sugar salt flour oatmeal cereal bacon
    garlic ginger juice tea coffee cocoa lemonade chocolate toffee custard soup stew
    cheese ham corn shrimp fish sheep deer
"""))

_THIRD_IRREGULAR = {"have": "has", "do": "does", "go": "goes"}


def plural(noun: str) -> str:
    """English plural by spelling rules plus an exception table (child -> children)."""
    if noun in _PLURALS:
        return _PLURALS[noun]
    if noun in MASS_NOUNS:
        return noun
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def past(verb: str) -> str:
    """Simple past: the irregular table, else -ed with e-dropping, y->ied and doubling."""
    if verb in _PAST:
        return _PAST[verb]
    if verb in _DOUBLE:
        return verb + verb[-1] + "ed"
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ied"
    return verb + "ed"


def third_person(verb: str) -> str:
    """Present tense, third person singular (he *carries*, she *watches*)."""
    if verb in _THIRD_IRREGULAR:
        return _THIRD_IRREGULAR[verb]
    if verb.endswith(("s", "x", "z", "ch", "sh", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def gerund(verb: str) -> str:
    """-ing form (carrying, baking, stopping, tying)."""
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb in _DOUBLE:
        return verb + verb[-1] + "ing"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")) and len(verb) > 2:
        return verb[:-1] + "ing"
    return verb + "ing"


def article(word: str) -> str:
    """'a' or 'an' by the first sound (spelling-based, with the few exceptions used here)."""
    if word.startswith(("hour", "honest")):
        return "an"
    if word.startswith(("uni", "use", "one", "euro")):
        return "a"
    return "an" if word[:1] in "aeiou" else "a"


def vocabulary() -> set[str]:
    """Every base word form in the lexicon (lower case), for size reporting and tests."""
    groups = (PEOPLE, ANIMALS, THINGS, FOODS, PLACES, ABSTRACT, WEATHER, ADJ_GENERAL, ADJ_THING,
              ADJ_FOOD, ADV, V_THING, V_FOOD, V_PERSON, V_ANIMAL, V_ABSTRACT, V_INTRANS, PREPS_PLACE)
    words = {w for g in groups for w in g}
    words |= {n.lower() for n in NAMES_MALE + NAMES_FEMALE + WEEKDAYS + MONTHS}
    words |= {w for t in TIMES for w in t.split()}
    return words
