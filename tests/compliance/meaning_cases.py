"""Tables for the meaning rules (config/meaning/cn.yaml): prohibited paraphrases, benign collection
texts, and wording only compliance may approve.

Written as realistic collection SMS bodies, independently of the rule file: a row is here because
of what it says, not because of which words the rules happen to list. ``cn_text`` in the tests
adds the signature, the creditor and the official contact around each body.
"""

from __future__ import annotations

TELL = "CN-3P-01/tell-contacts"
EXPOSE = "CN-CONTENT-04/public-exposure"
VISIT = "CN-CONTENT-01/visit-threat"
FAMILY = "CN-CONTENT-02/family-consequence"
COERCE = "CN-CONTENT-02/coercion"
CREDIT = "CN-CONTENT-02/credit-exaggeration"
AUTHORITY = "CN-ID-01/authority-claim"

# (rule the meaning rules must report, body). Every row must be blocked even in approved wording.
PROHIBITED: list[tuple[str, str]] = [
    # --- telling family, friends, colleagues, the employer (third parties) ---------------------
    (TELL, "通知你家人和单位同事"),
    (TELL, "再不处理，我们将通知你家人和单位同事"),
    (TELL, "把你的欠款情况发给你的同事"),
    (TELL, "我们会把您的逾期记录发给您的领导"),
    (TELL, "今天下午前不还款，我们就联系您的父母说明情况"),
    (TELL, "催收人员已准备告知您的亲友您的逾期情况"),
    (TELL, "您的紧急联系人将收到您的逾期通知"),
    (TELL, "我司将向您的工作单位发函说明欠款事宜"),
    (TELL, "逾期信息将同步给您通讯录中的联系人"),
    (TELL, "如仍不还款，将由专员致电您的配偶核实"),
    (TELL, "我们已经把你的情况告诉了你老婆"),
    (TELL, "明天起逐一打电话给你的亲戚朋友"),
    (TELL, "你的领导很快就会知道你欠钱不还"),
    (TELL, "律师将联系你所在公司的人事部门"),
    (TELL, "我们会发短信给你的同学和同事"),
    (TELL, "您的欠款明细将抄送您的单位领导"),
    (TELL, "我们将通知您所在的村委会"),
    (TELL, "让你全家都知道你借钱不还"),
    (TELL, "我们会联系你的家属"),
    (TELL, "您再不接电话，我们只能联系您的紧急联系人了"),
    (TELL, "把您的借款信息转发至您单位邮箱"),
    (TELL, "通知你的家人和朋友来替你还"),
    (TELL, "我们已将你的逾期情况告知你的房东"),
    (TELL, "你孩子的老师也会收到催收通知"),
    (TELL, "催收员会给你通讯录里的每个人发信息"),
    (TELL, "我们将向您的亲属催收这笔欠款"),
    (TELL, "下一步我们会找你的同事了解情况"),
    (TELL, "通 知 你 家 人"),  # spaces
    (TELL, "我們將聯繫您的家人"),  # traditional
    (TELL, "我们会联系你的 家 属 和 同 事"),
    (TELL, "再不还钱马上通知你单位"),  # 不 of a condition, not a negation
    (TELL, "不还就联系你老婆"),
    (TELL, "你要是不处理，我们不得不通知你的家人"),  # 不得不: must, not a negation
    (TELL, "难道你不怕我们告诉你家人吗"),
    (TELL, "我们的原话是：“三天内不还就通知你家人”"),  # quoted, but not reported as a warning
    (TELL, "“不还就通知你家人”之类的话，我们说到做到"),  # quoted, no warning word
    (TELL, "我们不会联系你的家人但会通知你的单位"),  # the negation ends at 但
    (TELL, "你的家人很快会接到我们的电话"),
    (TELL, "你单位的人都会看到你的欠款记录"),
    (TELL, "不还款的话我们将会把你的资料交给你的领导"),
    (TELL, "我们将依法向您所在单位了解您的收入情况"),
    (TELL, "今天不还，明天你们全公司都知道"),
    # --- public exposure -----------------------------------------------------------------------
    (EXPOSE, "我们将在朋友圈公开您的欠款信息"),
    (EXPOSE, "把你的照片和身份证发到网上"),
    (EXPOSE, "将您的逾期信息张贴到您家小区门口"),
    (EXPOSE, "我们会在你老家村口贴告示"),
    (EXPOSE, "在你们公司群里曝光你"),
    (EXPOSE, "你的欠款信息会被公示在网上"),
    (EXPOSE, "将你的欠款信息投放到你所在社区"),
    (EXPOSE, "考虑把你的事发到抖音和微博上"),
    # --- visits to home, work, school ----------------------------------------------------------
    (VISIT, "安排人员前往你家"),
    (VISIT, "否则将起诉并安排上门催收"),
    (VISIT, "我们已安排外访人员近期到您家中核实情况"),
    (VISIT, "催收人员明天会上门拜访"),
    (VISIT, "我们的工作人员将去你单位找你"),
    (VISIT, "近期将派专人到你户籍地走访"),
    (VISIT, "三天内不还款，我们的人会登门拜访"),
    (VISIT, "律师会带人到你公司当面处理"),
    (VISIT, "外访组已出发，预计下午到达你的住处"),
    (VISIT, "我们有你的家庭住址，会派人过去"),
    (VISIT, "我们将联合当地催收团队实地走访"),
    (VISIT, "下周一我们会到你父母家里"),
    (VISIT, "我们会在你下班的时候去公司门口等你"),
    (VISIT, "不排除上门走访的可能"),  # 不排除: not a negation
    (VISIT, "催收主管说“明天就派人去你家”"),  # reported, but as a threat
    # --- consequences for family, children, school, work ---------------------------------------
    (FAMILY, "影响你子女上学"),
    (FAMILY, "逾期会影响你孩子以后考公务员"),
    (FAMILY, "你的欠款会连累你的家人"),
    (FAMILY, "您的子女将来入学、参军都会受影响"),
    (FAMILY, "逾期记录会影响你配偶的贷款"),
    (FAMILY, "你家人的征信也会受牵连"),
    (FAMILY, "到时候你父母的养老金都会被扣"),
    (FAMILY, "会影响你全家坐飞机高铁"),
    (FAMILY, "你的孩子会因为你被学校劝退"),
    (FAMILY, "拖欠下去你的工作也保不住"),
    # --- coercive measures only a court may order, asserted as coming --------------------------
    (COERCE, "我们将申请冻结你名下所有银行卡"),
    (COERCE, "法院下周将冻结您的工资账户"),
    (COERCE, "你将面临拘留"),
    (COERCE, "下一步就是查封你的房子和车"),
    (COERCE, "明天开始划扣你的微信和支付宝余额"),
    (COERCE, "再不还就等着被抓吧"),
    (COERCE, "你这是要坐牢的"),
    (COERCE, "您名下的财产将被强制拍卖"),
    (COERCE, "你的社保和公积金账户会被冻结"),
    (COERCE, "您将被限制乘坐飞机高铁"),
    (COERCE, "你的案子已经转到法院了"),
    (COERCE, "我们已向公安机关报案"),
    # --- credit exaggerated, invented blacklists -----------------------------------------------
    (CREDIT, "你的征信会彻底花掉，以后再也贷不了款"),
    (CREDIT, "逾期记录将永久保留在征信中"),
    (CREDIT, "您将被拉入全国金融黑名单"),
    (CREDIT, "你已上了征信黑名单"),
    (CREDIT, "以后买房买车都办不了贷款"),
    (CREDIT, "你这辈子都别想再贷款了"),
    (CREDIT, "您已被列为失信人员"),
    # --- claiming to be, or to act for, a court, the police, a lawyer --------------------------
    (AUTHORITY, "我们是法院的"),
    (AUTHORITY, "我是市中级人民法院执行局的工作人员"),
    (AUTHORITY, "这里是XX区人民法院，请您尽快处理"),
    (AUTHORITY, "我们是受法院委托的律师事务所"),
    (AUTHORITY, "本短信由公安机关发出"),
    (AUTHORITY, "我是负责你案子的律师"),
    (AUTHORITY, "我们这边是司法部门的"),
    (AUTHORITY, "本人系XX律师事务所律师，受托处理您的欠款"),
    (AUTHORITY, "我们会让警察去你家"),
    (AUTHORITY, "法院会派人来找你"),
]

# Bodies a collection SMS may carry without any approval: nothing may stop them.
BENIGN: list[str] = [
    # the same words, negated
    "我们不会联系您的家人",
    "我们不会将您的信息透露给任何第三方",
    "我们不会上门催收，请放心",
    "我们绝不会向您的单位或同事透露任何信息",
    "您的借款信息不会告知您的家人和朋友",
    "本公司从不联系借款人的通讯录联系人",
    "我们承诺不会上门打扰您",
    "请放心，我们不会曝光您的任何个人信息",
    "我司不会以任何形式向您的亲友催收",
    "我们不会冻结您的银行卡",
    "您的逾期不会影响您的家人",
    "请放心，我们不会派人上门",
    "请不要担心，我们不会把您的情况告诉任何亲友",
    "本公司不会采取任何上门、曝光或联系亲友的方式催收",
    "我们不会向您的工作单位发送任何信息",
    "我们不会收取任何催收费或上门费",
    # the same words, used harmlessly
    "如有困难请联系我们",
    "请通过官方App还款",
    "如有疑问，请联系官方客服95XXX",
    "您可以联系我们协商还款安排",
    "还款成功后，我们会短信告知您",
    "请您告知我们方便联系的时间",
    "请通知我们您的新联系方式",
    "请勿向任何个人账户转账，谨防诈骗",
    "如需家人代为还款，请通过官方App操作",
    "如有人冒充我司工作人员联系您的家人索要钱款，请立即致电95XXX核实",
    "请警惕“不还款就通知家人和单位”之类的说法，我司从不如此催收",
    "谨防诈骗：自称“公安民警”要求转账的均为骗局",  # soft words (法院) would still need approval
    "我司不会要求您提供家人或同事的联系方式",
    "您可前往就近的营业网点办理还款",
    "您可到就近银行网点或通过官方App还款",
    "您可登录官方App查看账单明细",
    "按时还款可保持良好信用记录",
    "珍惜个人信用，按时还款",
    "逾期可能产生罚息，请尽快还款",
    "家人生病等特殊情况，可回复本短信申请协商",
    "温馨提示：请勿将验证码告知他人",
    "请勿向他人透露您的验证码",
    "为保护您的隐私，本短信仅发送至借款人本人",
    "工作人员会在工作日9:00-18:00与您联系",
    "专员将致电您本人确认还款安排",
    "您可联系家人协助登录App办理",
    "如需帮助，您可以通知您的家人陪同办理",
    "我们已收到您的还款，系统将自动更新您的账户状态",
    "关注官方公众号可查询还款进度",
    "我们理解您的困难，专员将与您联系",
    "我们会安排专员与您联系",
    "借款合同约定的还款日为每月15日",
    "如您已结清，请忽略本短信",
    "您的账户信息受法律保护，我们不会泄露给任何人",
    "家人的支持很重要，有困难可以和我们沟通",
    "如您对欠款有异议，可通过官方App提交材料",
    "如需开具结清证明，可联系客服",
    "请妥善保管个人信息，不要透露给陌生人",
    "我们将在还款日前一天短信提醒您",
    "如您的联系方式有变化，请及时告知我们",
    "您的还款已到账，感谢您的配合",
    "本短信由XX消费金融发送，如有疑问请致电95XXX",
    "如您不是本人，请回复“不是本人”，我们将停止发送",
    "您可通过官方App或前往营业厅办理",
    "还款遇到困难时，您也可以和家人商量后回复我们",
    "您的子女教育、家庭开支等困难可回复本短信说明",
    "账单已发送至您的官方App消息中心",
    "您的还款计划已通知专员跟进",
    "如对本短信有疑问，可直接回复，专员会尽快联系您",
    "请您告知家人注意防范电信诈骗",
    "我们会尽快与您的代理人联系",
    "客服人员会与您联系",
    "XX消费金融不会向您的亲友透露任何信息，也不会上门",
    "逾期期间您的借款额度将被冻结",  # the lender's own credit line, not a court's freezing
    "您的额度已冻结，结清后可申请恢复",
    "我们将于还款日从您绑定的银行卡自动划扣",
    "我们已收到您家人代为还款的款项",  # 收到您家人 holds 到您家
    "我们会在工作时间联系您，不会打扰您的家人",
    "为了您和家人的信用，请按时还款",
]

# Factual legal or credit-reporting wording: soft risk. Sent only in approved wording, and then
# nothing stops it; never a hard block.
APPROVED_ONLY: list[str] = [
    "逾期记录将依法报送征信系统",
    "如长期未还款，我司可能依法通过诉讼途径解决",
    "根据合同约定，逾期可能影响您的个人征信记录",
    "我司保留依法追究违约责任的权利",
    "逾期将按合同约定计收罚息，并可能影响您的信用记录",
    "如未按时还款，我司可能委托律师处理",
]

# Threats dressed in approved legal wording: approval must not let them through.
LAUNDERED: list[tuple[str, str]] = [
    (VISIT, "否则将起诉并安排上门催收"),
    (TELL, "如不还款，我们将起诉你并通知你的家人"),
    (COERCE, "依法起诉后法院将冻结你名下所有账户"),
    (TELL, "逾期将上报征信，并告知您的单位"),
    (AUTHORITY, "我们是法院委托的律师，将依法处理"),
]
