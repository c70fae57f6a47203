"""The offline demo collection: a SYNTHETIC medical search task generated deterministically by code.

Nothing here is downloaded or shipped: :func:`build_demo_collection` builds the whole collection from
the vocabulary tables below and a seed, in well under a second. The documents are NOT real abstracts
and their findings are invented; only the vocabulary is real.

What it models is the vocabulary mismatch of real medical search. Users ask in LAY words ("blood
thinners for a heart attack in seniors"); the documents are written in TECHNICAL terms
("Anticoagulant therapy for myocardial infarction in elderly patients"). Each concept in the tables has
one or more lay phrases and one to three real technical synonyms:

* conditions (``_CONDITIONS``), each with the interventions and populations that plausibly go with it;
* interventions (``_INTERVENTIONS``): drugs (often the lay name is a brand, the technical name the
  generic), procedures and lifestyle changes;
* populations (``_POPULATIONS``): "kids" -> "pediatric patients", "seniors" -> "elderly patients", ...

A *topic* is one combination (condition, intervention, population or none). Per topic the generator
writes ``docs_per_topic`` short abstracts (title plus two to four sentences from templates, technical
terms plus generic clinical filler) about exactly that combination, ``partial_per_topic`` about the same
condition and intervention in another population, and ``distractors`` that share only the condition or
only the intervention. ``filler_docs`` more documents mention a single concept or none. With a small
probability a document also gives a lay name in passing ("(commonly called heart attacks)"), as real
abstracts sometimes do.

Each topic yields one example: a lay question from varied templates ("does Tylenol work for a sore
throat in kids?") that shares no stemmed word with the topic's technical terms. Judgments follow the
facets over the whole corpus: 2 for a document with the topic's condition, intervention and population,
1 for the same condition and intervention in another population (or none), and 0 for the topic's own
distractors. ``example.meta`` records the facets, the lay and technical terms, and ``oracle_query``:
every technical synonym of the topic, the "perfect rewrite" (see :func:`oracle_query`).

Splits (train/dev/test) are by topic; concepts are shared across splits (every concept of a dev or test
topic also occurs in a train topic), so a lay-to-technical mapping learned on train transfers.

With the defaults, BM25 (bm25s, English stopwords and stemmer) reaches a recall@100 of about 0.2 with
the lay questions and about 0.99 with the oracle rewrites on the test split (see ``tests/test_demo.py``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..errors import DeepRetrievalError
from ..types import Collection, Document, Example

# ---------------------------------------------------------------------------------------------------
# Vocabulary. Lay phrases never share a stemmed word with a technical term of the same concept, nor
# with the technical terms of any concept they are combined with (checked in tests/test_demo.py).


@dataclass(frozen=True)
class _Concept:
    key: str
    lay: tuple[str, ...]
    technical: tuple[str, ...]


@dataclass(frozen=True)
class _Condition(_Concept):
    interventions: tuple[str, ...] = ()
    # Population keys a topic may add to this condition (a topic may also have no population).
    populations: tuple[str, ...] = ()


def _cond(
    key: str, lay: tuple[str, ...], technical: tuple[str, ...], interventions: str, populations: str = ""
) -> _Condition:
    return _Condition(key, lay, technical, tuple(interventions.split()), tuple(populations.split()))


_POPULATIONS: tuple[_Concept, ...] = (
    _Concept("kids", ("kids", "young kids"), ("pediatric patients", "children")),
    _Concept("teens", ("teens", "teenagers"), ("adolescents", "adolescent patients")),
    _Concept("seniors", ("older people", "seniors"), ("elderly patients", "geriatric patients")),
    _Concept("pregnant", ("pregnant women", "moms-to-be"), ("obstetric patients", "gravid patients")),
    _Concept("babies", ("babies", "newborns"), ("infants", "neonates")),
    _Concept("menopause", ("women going through the change",), ("postmenopausal patients",)),
)

_INTERVENTIONS: tuple[_Concept, ...] = (
    _Concept("aspirin", ("aspirin", "baby aspirin"), ("acetylsalicylic acid", "antiplatelet therapy")),
    _Concept("blood_thinners", ("blood thinners",), ("anticoagulant therapy", "heparin", "warfarin")),
    _Concept("cholesterol_pills", ("cholesterol pills",), ("statins", "atorvastatin")),
    _Concept("water_pills", ("water pills",), ("diuretics", "thiazide", "furosemide")),
    _Concept(
        "bp_pills",
        ("blood pressure pills", "blood pressure meds"),
        ("antihypertensive agents", "ACE inhibitors", "lisinopril"),
    ),
    _Concept("heart_rate_pills", ("heart rate pills",), ("beta-blockers", "metoprolol", "propranolol")),
    _Concept("heart_stent", ("a heart stent", "the balloon procedure"), ("percutaneous coronary intervention",)),
    _Concept("painkillers", ("painkillers",), ("analgesics", "NSAIDs", "ibuprofen")),
    _Concept("tylenol", ("Tylenol",), ("acetaminophen", "paracetamol")),
    _Concept("antibiotics", ("antibiotics",), ("antimicrobial therapy", "amoxicillin")),
    _Concept("steroids", ("steroids", "steroid pills"), ("corticosteroids", "glucocorticoids", "prednisone")),
    _Concept(
        "antidepressants",
        ("antidepressants", "happy pills"),
        ("selective serotonin reuptake inhibitors", "SSRIs", "sertraline"),
    ),
    _Concept("sleeping_pills", ("sleeping pills",), ("hypnotics", "benzodiazepines", "zolpidem")),
    _Concept(
        "talk_therapy",
        ("counseling", "talking to a therapist"),
        ("psychotherapy", "cognitive behavioral therapy"),
    ),
    _Concept("meditation", ("meditation",), ("mindfulness-based stress reduction",)),
    _Concept("working_out", ("working out", "going for walks"), ("aerobic exercise", "physical activity")),
    _Concept("physical_therapy", ("physical therapy",), ("physiotherapy", "rehabilitation")),
    _Concept("losing_weight", ("losing weight", "slimming down"), ("caloric restriction", "hypocaloric diet")),
    _Concept("less_salt", ("cutting back on salt",), ("sodium restriction", "low-sodium diet")),
    _Concept("fish_oil", ("fish oil",), ("omega-3 fatty acids", "eicosapentaenoic acid")),
    _Concept("vitamin_d", ("vitamin D", "the sunshine vitamin"), ("cholecalciferol", "ergocalciferol")),
    _Concept("vitamin_c", ("vitamin C",), ("ascorbic acid",)),
    _Concept("iron_pills", ("iron pills",), ("ferrous sulfate", "ferric carboxymaltose")),
    _Concept("probiotics", ("probiotics", "good bacteria"), ("Lactobacillus rhamnosus", "Bifidobacterium")),
    _Concept("acid_reducers", ("acid reducers", "antacids"), ("proton pump inhibitors", "omeprazole")),
    _Concept("inhaler", ("an inhaler", "a puffer"), ("bronchodilators", "salbutamol", "tiotropium")),
    _Concept("allergy_pills", ("allergy pills",), ("antihistamines", "cetirizine", "loratadine")),
    _Concept("nose_spray", ("nose spray",), ("intranasal corticosteroids", "fluticasone")),
    _Concept("flu_shot", ("the flu shot",), ("influenza vaccination",)),
    _Concept("tamiflu", ("Tamiflu",), ("oseltamivir", "neuraminidase inhibitors")),
    _Concept("valtrex", ("Valtrex",), ("valacyclovir", "acyclovir")),
    _Concept("keyhole_surgery", ("keyhole surgery",), ("laparoscopy", "laparoscopic approach")),
    _Concept("shock_waves", ("shock wave treatment",), ("lithotripsy",)),
    _Concept("joint_replacement", ("joint replacement",), ("arthroplasty", "total knee arthroplasty")),
    _Concept("drinking_water", ("drinking more water",), ("oral hydration", "increased fluid intake")),
    _Concept("light_box", ("a light box", "sun lamps"), ("phototherapy", "narrowband UVB")),
    _Concept("back_cracking", ("back cracking",), ("spinal manipulation", "chiropractic care")),
    _Concept("cortisone_shots", ("cortisone shots",), ("intra-articular corticosteroid injection",)),
    _Concept("brace", ("wearing a brace",), ("orthosis", "splinting")),
    _Concept("eye_patch", ("an eye patch",), ("occlusion therapy", "atropine penalization")),
    _Concept("glasses", ("glasses",), ("spectacle correction", "corrective lenses")),
    _Concept("kidney_machine", ("the kidney machine",), ("hemodialysis", "renal replacement therapy")),
    _Concept("thyroid_pills", ("thyroid pills",), ("levothyroxine", "thyroxine replacement")),
    _Concept("radioactive_iodine", ("radioactive iodine",), ("radioiodine ablation",)),
    _Concept("blood_sugar_pills", ("blood sugar pills",), ("metformin", "biguanides")),
    _Concept("stomach_stapling", ("stomach stapling",), ("bariatric surgery", "gastric bypass")),
    _Concept("accutane", ("Accutane",), ("isotretinoin", "oral retinoids")),
    _Concept("moisturizer", ("moisturizing cream", "lotion"), ("emollients", "emollient therapy")),
    _Concept("stool_softeners", ("stool softeners",), ("laxatives", "docusate")),
    _Concept("fiber", ("fiber supplements",), ("psyllium", "ispaghula husk")),
    _Concept("aricept", ("Aricept",), ("donepezil", "cholinesterase inhibitors")),
    _Concept("sinemet", ("Sinemet",), ("levodopa", "carbidopa")),
    _Concept("seizure_pills", ("seizure pills",), ("anticonvulsants", "antiepileptic drugs", "valproate")),
    _Concept("the_pill", ("the pill", "birth control pills"), ("combined oral contraceptives",)),
    _Concept("ginger", ("ginger",), ("Zingiber officinale",)),
    _Concept("vitamin_b6", ("vitamin B6",), ("pyridoxine",)),
    _Concept("mouthwash", ("mouthwash",), ("chlorhexidine rinse", "antiseptic mouth rinse")),
    _Concept("teeth_cleaning", ("a deep teeth cleaning",), ("scaling and root planing",)),
    _Concept("lamisil", ("Lamisil",), ("terbinafine", "topical azoles")),
    _Concept("special_mattress", ("a special mattress",), ("pressure-redistributing support surfaces",)),
    _Concept("bandages", ("bandages",), ("hydrocolloid dressings", "foam dressings")),
    _Concept("head_moves", ("head turning exercises",), ("Epley maneuver", "canalith repositioning")),
    _Concept("kegels", ("kegel exercises",), ("pelvic floor muscle training",)),
    _Concept("quitting_drinking", ("quitting drinking", "giving up booze"), ("alcohol abstinence",)),
    _Concept("quitting_smoking", ("quitting smoking",), ("tobacco cessation", "nicotine replacement therapy")),
    _Concept("gallbladder_removal", ("gallbladder removal",), ("cholecystectomy",)),
    _Concept("ear_tubes", ("ear tubes",), ("tympanostomy", "myringotomy")),
    _Concept("ear_drops", ("ear drops",), ("otic solution", "ciprofloxacin otic suspension")),
    _Concept("decongestants", ("decongestants",), ("pseudoephedrine", "oxymetazoline")),
    _Concept("neti_pot", ("a neti pot", "salt water rinses"), ("nasal irrigation", "saline irrigation")),
    _Concept("support_stockings", ("support stockings",), ("graduated compression", "compression hosiery")),
)

_CONDITIONS: tuple[_Condition, ...] = (
    _cond(
        "heart_attack",
        ("heart attacks", "a heart attack"),
        ("myocardial infarction", "acute coronary syndrome"),
        "aspirin blood_thinners cholesterol_pills heart_stent quitting_smoking working_out heart_rate_pills",
        "seniors menopause",
    ),
    _cond(
        "hypertension",
        ("high blood pressure",),
        ("hypertension", "arterial hypertension"),
        "bp_pills water_pills less_salt losing_weight working_out meditation heart_rate_pills",
        "seniors pregnant teens",
    ),
    _cond(
        "kidney_stones",
        ("kidney stones",),
        ("nephrolithiasis", "renal calculi", "urolithiasis"),
        "shock_waves drinking_water painkillers water_pills keyhole_surgery",
        "kids seniors pregnant",
    ),
    _cond(
        "stroke",
        ("a stroke", "strokes"),
        ("cerebrovascular accident", "cerebral infarction"),
        "blood_thinners aspirin physical_therapy cholesterol_pills bp_pills",
        "seniors",
    ),
    _cond(
        "diabetes",
        ("high blood sugar",),
        ("diabetes mellitus", "hyperglycemia"),
        "blood_sugar_pills losing_weight working_out stomach_stapling fiber",
        "kids teens seniors pregnant",
    ),
    _cond(
        "high_cholesterol",
        ("high cholesterol",),
        ("hypercholesterolemia", "hyperlipidemia", "dyslipidemia"),
        "cholesterol_pills fish_oil working_out fiber losing_weight",
        "seniors kids menopause",
    ),
    _cond(
        "heartburn",
        ("heartburn",),
        ("gastroesophageal reflux disease", "reflux esophagitis"),
        "acid_reducers losing_weight keyhole_surgery probiotics",
        "pregnant babies seniors",
    ),
    _cond(
        "copd",
        ("smoker's cough", "smoker's lungs"),
        ("chronic obstructive pulmonary disease", "emphysema"),
        "inhaler steroids quitting_smoking physical_therapy antibiotics flu_shot",
        "seniors",
    ),
    _cond(
        "pink_eye",
        ("pink eye",),
        ("conjunctivitis",),
        "antibiotics allergy_pills",
        "kids babies",
    ),
    _cond(
        "shingles",
        ("shingles",),
        ("herpes zoster",),
        "valtrex painkillers steroids",
        "seniors",
    ),
    _cond(
        "chickenpox",
        ("chickenpox",),
        ("varicella",),
        "valtrex tylenol",
        "kids babies pregnant",
    ),
    _cond(
        "flu",
        ("the flu",),
        ("influenza",),
        "flu_shot tamiflu tylenol vitamin_c",
        "kids seniors pregnant babies",
    ),
    _cond(
        "common_cold",
        ("a cold", "the common cold"),
        ("upper respiratory tract infection", "rhinovirus infection"),
        "vitamin_c decongestants neti_pot tylenol",
        "kids seniors",
    ),
    _cond(
        "sore_throat",
        ("a sore throat", "strep throat"),
        ("pharyngitis", "streptococcal pharyngitis"),
        "antibiotics painkillers steroids",
        "kids teens",
    ),
    _cond(
        "ear_infection",
        ("ear infections",),
        ("otitis media",),
        "antibiotics ear_tubes tylenol",
        "kids babies",
    ),
    _cond(
        "bladder_infection",
        ("bladder infections",),
        ("cystitis",),
        "antibiotics drinking_water probiotics",
        "pregnant seniors",
    ),
    _cond(
        "pneumonia",
        ("a chest infection",),
        ("pneumonia", "bronchopneumonia"),
        "antibiotics steroids flu_shot",
        "kids seniors babies",
    ),
    _cond(
        "migraine",
        ("throbbing headaches",),
        ("migraine",),
        "painkillers tylenol meditation heart_rate_pills",
        "kids teens",
    ),
    _cond(
        "osteoarthritis",
        ("wear and tear arthritis",),
        ("osteoarthritis", "osteoarthrosis"),
        "joint_replacement cortisone_shots painkillers physical_therapy losing_weight",
        "seniors menopause",
    ),
    _cond(
        "osteoporosis",
        ("brittle bones", "thinning bones"),
        ("osteoporosis", "osteopenia"),
        "vitamin_d working_out",
        "seniors menopause",
    ),
    _cond(
        "anemia",
        ("low iron", "tired blood"),
        ("anemia", "anaemia"),
        "iron_pills vitamin_c",
        "pregnant kids menopause",
    ),
    _cond(
        "hypothyroidism",
        ("an underactive thyroid",),
        ("hypothyroidism",),
        "thyroid_pills",
        "pregnant seniors menopause",
    ),
    _cond(
        "hyperthyroidism",
        ("an overactive thyroid",),
        ("hyperthyroidism", "thyrotoxicosis"),
        "radioactive_iodine heart_rate_pills",
        "pregnant seniors",
    ),
    _cond(
        "heart_failure",
        ("a weak heart",),
        ("congestive cardiac failure", "left ventricular dysfunction"),
        "water_pills bp_pills working_out less_salt heart_rate_pills",
        "seniors",
    ),
    _cond(
        "afib",
        ("an irregular heartbeat",),
        ("atrial fibrillation", "cardiac arrhythmia"),
        "blood_thinners aspirin heart_rate_pills",
        "seniors",
    ),
    _cond(
        "dvt",
        ("blood clots in the leg",),
        ("deep vein thrombosis", "venous thromboembolism"),
        "blood_thinners support_stockings aspirin",
        "pregnant seniors",
    ),
    _cond(
        "piles",
        ("piles",),
        ("hemorrhoids", "hemorrhoidal disease"),
        "stool_softeners fiber",
        "pregnant",
    ),
    _cond(
        "gallstones",
        ("gallstones",),
        ("cholelithiasis", "biliary calculi"),
        "gallbladder_removal shock_waves keyhole_surgery",
        "pregnant seniors",
    ),
    _cond(
        "stomach_bug",
        ("a stomach bug", "stomach flu"),
        ("viral gastroenteritis", "norovirus infection"),
        "drinking_water probiotics",
        "kids babies seniors",
    ),
    _cond(
        "ibs",
        ("a spastic colon", "a nervous stomach"),
        ("irritable bowel syndrome",),
        "probiotics fiber talk_therapy meditation",
        "teens",
    ),
    _cond(
        "depression",
        ("the blues", "constant sadness"),
        ("major depressive disorder", "clinical depression"),
        "antidepressants talk_therapy working_out light_box meditation",
        "teens seniors pregnant menopause",
    ),
    _cond(
        "anxiety",
        ("constant worrying", "bad nerves"),
        ("generalized anxiety disorder",),
        "antidepressants talk_therapy meditation heart_rate_pills",
        "kids teens seniors",
    ),
    _cond(
        "insomnia",
        ("trouble sleeping",),
        ("insomnia", "sleeplessness"),
        "sleeping_pills talk_therapy meditation working_out",
        "seniors teens menopause",
    ),
    _cond(
        "dementia",
        ("memory loss",),
        ("dementia", "Alzheimer disease"),
        "aricept working_out fish_oil",
        "seniors",
    ),
    _cond(
        "parkinsons",
        ("the shaking palsy",),
        ("Parkinson disease", "parkinsonism"),
        "sinemet physical_therapy working_out",
        "seniors",
    ),
    _cond(
        "epilepsy",
        ("fits", "seizure fits"),
        ("epilepsy", "convulsive disorder"),
        "seizure_pills",
        "kids pregnant babies",
    ),
    _cond(
        "acne",
        ("pimples", "zits"),
        ("acne vulgaris",),
        "accutane antibiotics the_pill",
        "teens",
    ),
    _cond(
        "eczema",
        ("itchy dry skin",),
        ("atopic dermatitis", "eczema"),
        "moisturizer steroids light_box probiotics",
        "kids babies",
    ),
    _cond(
        "hay_fever",
        ("hay fever",),
        ("allergic rhinitis", "seasonal rhinitis"),
        "allergy_pills nose_spray neti_pot",
        "kids teens pregnant",
    ),
    _cond(
        "swimmers_ear",
        ("swimmer's ear",),
        ("otitis externa",),
        "ear_drops antibiotics painkillers",
        "kids teens",
    ),
    _cond(
        "obesity",
        ("a weight problem", "extra pounds"),
        ("obesity", "adiposity"),
        "stomach_stapling working_out blood_sugar_pills",
        "kids teens",
    ),
    _cond(
        "tennis_elbow",
        ("tennis elbow",),
        ("lateral epicondylitis",),
        "cortisone_shots brace physical_therapy",
    ),
    _cond(
        "frozen_shoulder",
        ("a frozen shoulder",),
        ("adhesive capsulitis",),
        "cortisone_shots physical_therapy",
        "menopause",
    ),
    _cond(
        "back_pain",
        ("lower back pain", "a bad back"),
        ("lumbago", "lumbar spondylosis"),
        "back_cracking physical_therapy painkillers working_out",
        "pregnant seniors",
    ),
    _cond(
        "lazy_eye",
        ("a lazy eye",),
        ("amblyopia",),
        "eye_patch glasses",
        "kids",
    ),
    _cond(
        "cold_sores",
        ("cold sores", "fever blisters"),
        ("herpes labialis",),
        "valtrex",
        "teens",
    ),
    _cond(
        "athletes_foot",
        ("athlete's foot",),
        ("tinea pedis",),
        "lamisil",
        "teens",
    ),
    _cond(
        "gum_disease",
        ("bleeding gums", "gum disease"),
        ("periodontitis", "gingivitis"),
        "teeth_cleaning mouthwash antibiotics",
        "pregnant seniors",
    ),
    _cond(
        "heavy_periods",
        ("heavy periods",),
        ("menorrhagia",),
        "the_pill iron_pills painkillers",
        "teens",
    ),
    _cond(
        "period_pain",
        ("period cramps", "painful periods"),
        ("dysmenorrhea",),
        "painkillers the_pill ginger",
        "teens",
    ),
    _cond(
        "morning_sickness",
        ("morning sickness",),
        ("hyperemesis gravidarum", "emesis gravidarum"),
        "ginger vitamin_b6",
    ),
    _cond(
        "cirrhosis",
        ("liver scarring",),
        ("cirrhosis", "hepatic fibrosis"),
        "quitting_drinking water_pills",
        "seniors",
    ),
    _cond(
        "fatty_liver",
        ("fatty liver",),
        ("hepatic steatosis", "steatohepatitis"),
        "losing_weight working_out quitting_drinking",
        "kids",
    ),
    _cond(
        "bedsores",
        ("bedsores",),
        ("pressure ulcers", "decubitus ulcers"),
        "special_mattress bandages",
        "seniors",
    ),
    _cond(
        "vertigo",
        ("dizzy spells", "the spins"),
        ("benign paroxysmal positional vertigo",),
        "head_moves physical_therapy allergy_pills",
        "seniors",
    ),
    _cond(
        "incontinence",
        ("a leaky bladder",),
        ("urinary incontinence",),
        "kegels",
        "seniors pregnant menopause",
    ),
    _cond(
        "kidney_failure",
        ("kidney failure",),
        ("end-stage renal disease", "renal insufficiency"),
        "kidney_machine less_salt",
        "seniors kids",
    ),
)

# ---------------------------------------------------------------------------------------------------
# Templates. Documents: {C} condition, {I} intervention, {P} population (technical); {LC}/{LI}/{LP} lay.
# Questions: {c} condition, {i} intervention, {in_p} " in <population>" or "", {who} who is asking about.

_TRIAL_TITLES: tuple[str, ...] = (
    "{I} for {C} in {P}: a randomized controlled trial",
    "Efficacy and safety of {I} in {P} with {C}",
    "{I} versus {control} in {P} with {C}: a multicenter study",
    "Long-term outcomes of {I} for {C} among {P}",
    "Effect of {I} on {outcome} in {P} with {C}",
    "{I} in the management of {C} in {P}: a systematic review and meta-analysis",
    "A prospective cohort study of {I} for {C} in {P}",
)

_TRIAL_SENTENCES: tuple[str, ...] = (
    "{C} is a {common} condition and a frequent cause of {burden}.",
    "We randomly assigned {n} {P} with {C} to {I} or {control}.",
    "In this {design}, {n} {P} with {C} received {I} for {weeks} weeks.",
    "{I} {effect} compared with {control} (hazard ratio 0.{hr}; 95% CI 0.{lo} to 0.{hi}).",
    "The primary outcome was {outcome} at {weeks} weeks; {outcome2} was a secondary outcome.",
    "Adverse events were {rare} and similar between groups; no new safety signals emerged.",
    "These findings support {I} as {line} option for {C} in {P}.",
    "Benefit of {I} was consistent across prespecified subgroups of {P} with {C}.",
    "Further trials should examine {I} in {P} with {severity} {C}.",
)

_CONDITION_TITLES: tuple[str, ...] = (
    "Prevalence and risk factors of {C} in {P}: a cross-sectional survey",
    "Diagnostic accuracy of clinical criteria for {C} in {P}",
    "Trends in hospital admissions for {C} among {P}",
    "Natural history of untreated {C} in {P}",
)
_CONDITION_SENTENCES: tuple[str, ...] = (
    "{C} is a {common} condition and a frequent cause of {burden}.",
    "We analysed registry data from {n} {P} with {C}.",
    "Older age, smoking and comorbidity were associated with {severity} {C}.",
    "Rates of {outcome} remained stable over the study period.",
    "Awareness of {C} among primary care clinicians was limited.",
)

_INTERVENTION_TITLES: tuple[str, ...] = (
    "Pharmacokinetics and tolerability of {I} in healthy volunteers",
    "Adherence to {I} in routine practice: a retrospective cohort",
    "Cost-effectiveness of {I} in primary care",
    "Prescribing patterns of {I} across {n} general practices",
)
_INTERVENTION_SENTENCES: tuple[str, ...] = (
    "We studied {n} participants who started {I}.",
    "Adherence to {I} declined over {weeks} weeks of follow-up.",
    "Costs were driven mainly by clinic visits and monitoring.",
    "Adverse events were {rare}; discontinuation was uncommon.",
)

_FILLER_TITLES: tuple[str, ...] = (
    "Telemedicine follow-up after hospital discharge: a pragmatic trial",
    "Trends in emergency department visits, 2005 to 2020",
    "Burnout among primary care physicians: a national survey",
    "Electronic health record alerts and guideline adherence",
    "Patient-reported outcome measures in routine clinical care",
    "Readmission rates after elective surgery in community hospitals",
    "Shared decision making in outpatient clinics: a qualitative study",
    "Medication reconciliation at hospital admission",
    "Health literacy and clinical outcomes in a multiethnic cohort",
    "Reporting quality of randomized trials in general medical journals",
)
_FILLER_SENTENCES: tuple[str, ...] = (
    "We included {n} participants from {sites} centres.",
    "Outcomes were assessed at {weeks} weeks by blinded assessors.",
    "Results varied widely between centres.",
    "Implementation required additional staff training and monitoring.",
    "The findings have implications for health services planning.",
    "Data were analysed with mixed-effects regression models.",
)

# A lay name given in passing, as abstracts sometimes do.
_LAY_ASIDES: tuple[str, ...] = (
    "{T} (commonly called {L})",
    "{T} (known to patients as {L})",
    "{T} ({L})",
)

_QUESTIONS: tuple[str, ...] = (
    "can {i} help with {c}{in_p}?",
    "is it worth trying {i} for {c}{in_p}?",
    "{i} for {c}{in_p}",
    "should {who} with {c} try {i}?",
    "what do studies say about {i} for {c}{in_p}",
    "my doctor mentioned {i} for {c}{in_p}, will it help?",
    "{c}{in_p}: would {i} help?",
    "any evidence for {i} in treating {c}{in_p}?",
    "is it safe to use {i} for {c}{in_p}?",
    "treating {c}{in_p} with {i}",
)

_FACETS: dict[str, tuple[str, ...]] = {
    "control": ("placebo", "usual care", "standard care", "sham treatment"),
    "outcome": (
        "symptom severity",
        "all-cause mortality",
        "hospitalization",
        "quality of life",
        "recurrence",
        "time to recovery",
        "functional status",
    ),
    "common": ("common", "prevalent", "frequently underdiagnosed", "chronic", "costly"),
    "burden": ("disability", "hospital admission", "lost workdays", "outpatient visits", "healthcare costs"),
    "design": ("open-label trial", "multicentre trial", "pragmatic trial", "prospective cohort study"),
    "effect": (
        "reduced symptom severity",
        "lowered all-cause mortality",
        "reduced hospitalization",
        "improved quality of life",
        "shortened time to recovery",
        "improved functional status",
        "reduced recurrence",
    ),
    "rare": ("rare", "mild", "infrequent", "mostly transient"),
    "line": ("a first-line", "a second-line", "an adjunctive", "a cost-effective"),
    "severity": ("severe", "moderate", "refractory", "recurrent"),
}
_GENERAL_POPULATION: tuple[str, ...] = ("adults", "adult patients", "outpatients")
_WHO_GENERAL: tuple[str, ...] = ("people", "someone", "adults")

_SPLIT_FRACTIONS: tuple[tuple[str, float], ...] = (("test", 0.2), ("dev", 0.2))


# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Topic:
    condition: _Condition
    intervention: _Concept
    population: _Concept | None

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.condition.key, self.intervention.key, self.population.key if self.population else None)

    @property
    def technical_terms(self) -> list[str]:
        terms = [*self.condition.technical, *self.intervention.technical]
        return terms + list(self.population.technical) if self.population else terms


@dataclass(frozen=True)
class _Doc:
    title: str
    text: str
    condition: str | None
    intervention: str | None
    population: str | None


def _concepts_by_key(concepts: tuple[_Concept, ...]) -> dict[str, _Concept]:
    return {c.key: c for c in concepts}


def _topic_pool() -> list[_Topic]:
    """Every plausible (condition, intervention, population) combination, in table order."""
    interventions = _concepts_by_key(_INTERVENTIONS)
    populations = _concepts_by_key(_POPULATIONS)
    pool = []
    for cond in _CONDITIONS:
        for ikey in cond.interventions:
            for pkey in (None, *cond.populations):
                pop = populations[pkey] if pkey else None
                pool.append(_Topic(cond, interventions[ikey], pop))
    return pool


def _capitalize(s: str) -> str:
    return s[:1].upper() + s[1:]


class _Writer:
    """Fills document templates for one facet combination, with an occasional lay aside."""

    def __init__(self, rng: random.Random, lay_rate: float) -> None:
        self.rng = rng
        self.lay_rate = lay_rate

    def _fill(self, template: str, slots: dict[str, str]) -> str:
        rng = self.rng
        values = {k: rng.choice(v) for k, v in _FACETS.items()}
        values["outcome"], values["outcome2"] = rng.sample(_FACETS["outcome"], 2)
        values.update(
            n=str(rng.randint(40, 4000)),
            weeks=str(rng.choice((4, 8, 12, 24, 52))),
            sites=str(rng.randint(3, 60)),
            hr=str(rng.randint(55, 85)),
            lo=str(rng.randint(35, 54)),
            hi=str(rng.randint(86, 99)),
        )
        values.update(slots)
        return template.format(**values)

    def _slots(
        self, cond: _Concept | None, interv: _Concept | None, pop: _Concept | None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Technical names for each slot, and for some slots a version with a lay aside."""
        rng = self.rng
        slots: dict[str, str] = {"P": rng.choice(pop.technical) if pop else rng.choice(_GENERAL_POPULATION)}
        asides: dict[str, str] = {}
        for slot, concept in (("C", cond), ("I", interv), ("P", pop)):
            if concept is None:
                continue
            if slot != "P":
                slots[slot] = rng.choice(concept.technical)
            if rng.random() < self.lay_rate:
                asides[slot] = rng.choice(_LAY_ASIDES).format(T=slots[slot], L=rng.choice(concept.lay))
        return slots, asides

    def write(
        self,
        cond: _Concept | None,
        interv: _Concept | None,
        pop: _Concept | None,
        titles: tuple[str, ...],
        sentences: tuple[str, ...],
    ) -> tuple[str, str]:
        rng = self.rng
        slots, asides = self._slots(cond, interv, pop)
        title = _capitalize(self._fill(rng.choice(titles), slots))
        chosen = rng.sample(sentences, k=min(len(sentences), rng.randint(2, 4)))
        body = []
        for sentence in chosen:
            # A lay aside goes into the first sentence that mentions its slot.
            local = dict(slots)
            for slot in list(asides):
                if "{" + slot + "}" in sentence:
                    local[slot] = asides.pop(slot)
            body.append(_capitalize(self._fill(sentence, local)))
        return title, " ".join(body)


def build_demo_collection(
    seed: int = 0,
    n_topics: int = 300,
    docs_per_topic: int = 8,
    distractors: int = 4,
    *,
    partial_per_topic: int = 2,
    filler_docs: int = 600,
    lay_rate: float = 0.12,
) -> Collection:
    """Generate the SYNTHETIC demo collection (name ``"demo"``), deterministically from ``seed``.

    ``n_topics`` topics (one example each) are drawn from the plausible combinations of the vocabulary.
    Per topic: ``docs_per_topic`` fully matching documents, ``partial_per_topic`` documents about the
    same condition and intervention in another population, ``distractors`` documents sharing only the
    condition or only the intervention; plus ``filler_docs`` documents about one concept or none.
    ``lay_rate`` is the chance that a document gives a concept's lay name in passing.
    """
    pool = _topic_pool()
    if not 3 <= n_topics <= len(pool):
        raise DeepRetrievalError(f"demo collection: n_topics must be between 3 and {len(pool)}, got {n_topics}")
    if min(docs_per_topic, distractors, partial_per_topic, filler_docs) < 0 or docs_per_topic < 1:
        raise DeepRetrievalError("demo collection: document counts must be >= 0 (docs_per_topic >= 1)")
    if not 0.0 <= lay_rate <= 1.0:
        raise DeepRetrievalError(f"demo collection: lay_rate must be in [0, 1], got {lay_rate}")

    rng = random.Random(f"deepretrieval-demo-{seed}")
    topics = rng.sample(pool, n_topics)
    writer = _Writer(rng, lay_rate)
    interventions = _concepts_by_key(_INTERVENTIONS)
    populations = _concepts_by_key(_POPULATIONS)
    conditions_with: dict[str, list[_Condition]] = {}
    for cond in _CONDITIONS:
        for ikey in cond.interventions:
            conditions_with.setdefault(ikey, []).append(cond)

    def trial(cond: _Condition, interv: _Concept, pop: _Concept | None) -> _Doc:
        title, text = writer.write(cond, interv, pop, _TRIAL_TITLES, _TRIAL_SENTENCES)
        return _Doc(title, text, cond.key, interv.key, pop.key if pop else None)

    docs: list[_Doc] = []
    own_distractors: list[list[int]] = []
    for topic in topics:
        cond, interv, pop = topic.condition, topic.intervention, topic.population
        docs.extend(trial(cond, interv, pop) for _ in range(docs_per_topic))
        other_pops: list[_Concept | None] = [populations[k] for k in cond.populations if pop is None or k != pop.key]
        if pop is not None:
            other_pops.append(None)
        for _ in range(partial_per_topic if other_pops else 0):
            docs.append(trial(cond, interv, rng.choice(other_pops)))
        mine = []
        for j in range(distractors):
            if j % 2 == 0:  # same condition, another intervention
                others = [k for k in cond.interventions if k != interv.key] or [
                    c.key for c in _INTERVENTIONS if c.key != interv.key
                ]
                docs.append(trial(cond, interventions[rng.choice(others)], pop))
            else:  # same intervention, another condition
                candidates = [c for c in conditions_with[interv.key] if c.key != cond.key] or [
                    c for c in _CONDITIONS if c.key != cond.key
                ]
                other = rng.choice(candidates)
                if pop is None or pop.key in other.populations:
                    docs.append(trial(other, interv, pop))
                else:
                    pkey = rng.choice((None, *other.populations))
                    docs.append(trial(other, interv, populations[pkey] if pkey else None))
            mine.append(len(docs) - 1)
        own_distractors.append(mine)

    for _ in range(filler_docs):
        kind = rng.random()
        if kind < 0.4:
            cond = rng.choice(_CONDITIONS)
            pkey = rng.choice((None, *cond.populations))
            pop = populations[pkey] if pkey else None
            title, text = writer.write(cond, None, pop, _CONDITION_TITLES, _CONDITION_SENTENCES)
            docs.append(_Doc(title, text, cond.key, None, pkey))
        elif kind < 0.7:
            interv = rng.choice(_INTERVENTIONS)
            title, text = writer.write(None, interv, None, _INTERVENTION_TITLES, _INTERVENTION_SENTENCES)
            docs.append(_Doc(title, text, None, interv.key, None))
        else:
            title, text = writer.write(None, None, None, _FILLER_TITLES, _FILLER_SENTENCES)
            docs.append(_Doc(title, text, None, None, None))

    # Shuffle so that neither ids nor index order reveal which documents belong together.
    order = list(range(len(docs)))
    rng.shuffle(order)
    doc_ids = [""] * len(docs)
    documents = []
    for new, old in enumerate(order):
        doc_ids[old] = f"demo-d{new:05d}"
        documents.append(Document(id=doc_ids[old], title=docs[old].title, text=docs[old].text))

    by_pair: dict[tuple[str | None, str | None], list[int]] = {}
    for i, d in enumerate(docs):
        by_pair.setdefault((d.condition, d.intervention), []).append(i)

    examples = []
    for n, (topic, mine) in enumerate(zip(topics, own_distractors, strict=True)):
        ckey, ikey, pkey = topic.key
        targets = {doc_ids[i]: 0 for i in mine}
        for i in by_pair[(ckey, ikey)]:
            targets[doc_ids[i]] = 2 if docs[i].population == pkey else 1
        examples.append(_example(f"demo-q{n:04d}", topic, targets, rng))

    return Collection(
        name="demo",
        documents=documents,
        examples=examples,
        splits=_split(topics, [e.id for e in examples], rng),
    )


def _example(qid: str, topic: _Topic, targets: dict[str, int], rng: random.Random) -> Example:
    cond, interv, pop = topic.condition, topic.intervention, topic.population
    c, i = rng.choice(cond.lay), rng.choice(interv.lay)
    p = rng.choice(pop.lay) if pop else None
    template = rng.choice(_QUESTIONS)
    question = template.format(c=c, i=i, in_p=f" in {p}" if p else "", who=p or rng.choice(_WHO_GENERAL))
    lay_terms = [c, i] + ([p] if p else [])
    technical = topic.technical_terms
    meta = {
        "synthetic": True,
        "topic": "/".join(k or "-" for k in topic.key),
        "condition": cond.key,
        "intervention": interv.key,
        "population": pop.key if pop else None,
        "lay_terms": lay_terms,
        "technical_terms": technical,
        "oracle_query": " ".join(technical),
    }
    return Example(id=qid, question=question, targets=targets, meta=meta)


def _split(topics: list[_Topic], ids: list[str], rng: random.Random) -> dict[str, list[str]]:
    """Split topics into train/dev/test (60/20/20), putting first occurrences of concepts into train.

    While train has room, a topic with a concept not yet in train goes to train, so that every concept
    of a dev or test topic also occurs in train (always so with the default sizes; best effort for very
    small collections, where dev and test still get at least one topic each).
    """
    n = len(topics)
    quota = {name: max(1, round(frac * n)) for name, frac in _SPLIT_FRACTIONS}
    train_quota = n - sum(quota.values())
    order = list(range(n))
    rng.shuffle(order)
    seen: set[str] = set()
    train: list[int] = []
    rest: list[int] = []
    for t in order:
        concepts = {f"{kind}:{k}" for kind, k in zip("cip", topics[t].key, strict=True) if k is not None}
        if concepts - seen and len(train) < train_quota:
            train.append(t)
            seen |= concepts
        else:
            rest.append(t)
    test = rest[: quota["test"]]
    dev = rest[quota["test"] : quota["test"] + quota["dev"]]
    train += rest[quota["test"] + quota["dev"] :]
    return {name: sorted(ids[t] for t in part) for name, part in (("train", train), ("dev", dev), ("test", test))}


def oracle_query(example: Example) -> str:
    """The "perfect rewrite" of a demo example: every technical synonym of its topic's concepts."""
    try:
        return str(example.meta["oracle_query"])
    except KeyError:
        raise DeepRetrievalError(
            f"example {example.id!r} has no oracle query (only demo collection examples have one)"
        ) from None
